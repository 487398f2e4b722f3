"""The grid: every (method, task, p, seed) of a TOML (or YAML) config as train + eval, resumable.

    sparsetune grid experiments/paper.toml --dry-run
    sparsetune grid experiments/example.toml -o results/example/results.jsonl

A config names the model, tasks, seeds, training defaults and the methods, each with
its own flags:

    model = "embedded:all-MiniLM-L6-v2"
    tasks = ["cb", "copa"]
    seeds = [1, 2]
    runs_dir = "runs/example"            # one run dir per (method, task, p, seed)
    [train]                              # flags for every run (sparsetune train)
    max_length = 128
    [[methods]]
    name = "SAM"                         # the label in Table 1
    score = "sam"                        # a mask producer: score, then sparse training
    p = [0.005]
    [[methods]]
    name = "LoRA"
    train = "lora"                       # a training method
    options = { lora_r = 16 }            # its --method-option KEY=VALUE settings

`launcher = "torchrun --nproc_per_node 2"` (or `--launcher` on the command line) runs
each run as a multi-process launch; `--jobs` still counts runs.
`pooler = "head" | "eligible"` at the top (optional) is `--pooler` for every score and
train of the grid at once: a mask is trained with the policy it was scored with, so
setting it in `[train]` alone would contradict the masks.

Each run executes in its own process (so its peak memory is its own and a crash ends
only that run) and appends one line to the results file when it has trained *and*
been evaluated; a rerun skips the run ids already there and resumes a killed run
from its checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import schema
from ..config import DEFAULT_SPARSITY, MASK_METHOD, MAX_LENGTH, MAX_SEED, POOLER_POLICIES, ScoreConfig, TrainConfig
from ..errors import FileFormatError, SparsetuneError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass(frozen=True)
class MethodSpec:
    """One row of Table 1: how to produce and train it."""

    name: str
    train: str = MASK_METHOD
    score: str | None = None
    p: tuple[float | None, ...] = (None,)
    train_flags: dict[str, Any] = field(default_factory=dict)
    score_flags: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridConfig:
    path: str
    model: str | None
    tasks: tuple[str, ...]
    seeds: tuple[int, ...]
    methods: tuple[MethodSpec, ...]
    runs_dir: str
    data_dir: str | None = None
    train_flags: dict[str, Any] = field(default_factory=dict)
    score_flags: dict[str, Any] = field(default_factory=dict)
    table_p: float = DEFAULT_SPARSITY
    launcher: str | None = None  # e.g. "torchrun --nproc_per_node 2": each run as N processes
    pooler: str | None = None  # --pooler for every score and train; None: their default (head)


@dataclass(frozen=True)
class RunSpec:
    """One (method, task, p, seed): everything a worker needs, JSON-serialisable."""

    method: MethodSpec
    task: str
    seed: int
    p: float | None
    model: str | None
    data_dir: str | None
    runs_dir: str

    @property
    def run_id(self) -> str:
        p = "dense" if self.p is None else f"p{self.p:g}"
        return f"{self.method.name}/{self.task}/{p}/seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.run_id

    @property
    def config_hash(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _tuple(value: Any, key: str, path: str) -> tuple:
    if isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(value, (int, float, str)):
        return (value,)
    raise FileFormatError(f"{path}: {key!r} must be a list")


def _method(raw: dict[str, Any], index: int, path: str) -> MethodSpec:
    if not isinstance(raw, dict) or "name" not in raw:
        raise FileFormatError(f"{path}: [[methods]] entry {index + 1} needs a name")
    known = {"name", "train", "score", "p", "flags", "score_flags", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise FileFormatError(
            f"{path}: method {raw['name']!r} has unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    p = _tuple(raw.get("p", [None]), "p", path)
    if raw.get("score") and p == (None,):
        raise FileFormatError(f"{path}: method {raw['name']!r} scores a mask, so it needs p = [...]")
    return MethodSpec(
        name=str(raw["name"]),
        train=str(raw.get("train", MASK_METHOD)),
        score=raw.get("score"),
        p=p,
        train_flags=dict(raw.get("flags", {})),
        score_flags=dict(raw.get("score_flags", {})),
        options={str(k): v for k, v in dict(raw.get("options", {})).items()},
    )


def _parse(text: str, path: Path) -> Any:
    """TOML, or YAML for a .yaml/.yml file (the same keys); YAML is read with safe_load,
    which builds plain data only."""
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(err, "problem", None) or " ".join(str(err).split())
            raise FileFormatError(f"grid config {path} is not valid YAML: {problem}{where}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise FileFormatError(f"grid config {path} is not valid TOML: {err}") from None


def load_grid(path: str | Path) -> GridConfig:
    """Parse and check a grid config; errors name the file and the key."""
    path = Path(path)
    try:
        raw = _parse(path.read_text(encoding="utf-8"), path)
    except RecursionError:  # `a = [[[[...]]]]`: the parsers recurse per level
        raise FileFormatError(f"grid config {path} is nested too deeply to be a grid config") from None
    except OSError as err:
        raise FileFormatError(f"cannot read grid config {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise FileFormatError(
            f"grid config {path} is not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})"
        ) from None
    if not isinstance(raw, dict):
        raise FileFormatError(f"grid config {path} is not a table of keys (model, tasks, seeds, methods)")
    for key in ("tasks", "seeds", "methods"):
        if key not in raw:
            raise FileFormatError(f"grid config {path} has no {key!r}")
    _check(raw, path)
    pooler = raw.get("pooler")
    if pooler is not None and pooler not in POOLER_POLICIES:
        raise FileFormatError(f"grid config {path}: pooler must be one of {', '.join(POOLER_POLICIES)}, got {pooler!r}")
    methods = tuple(_method(item, index, str(path)) for index, item in enumerate(raw["methods"]))
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise FileFormatError(f"grid config {path}: method names must be unique")
    return GridConfig(
        path=str(path),
        model=raw.get("model"),
        tasks=tuple(str(task) for task in _tuple(raw["tasks"], "tasks", str(path))),
        seeds=tuple(int(seed) for seed in _tuple(raw["seeds"], "seeds", str(path))),
        methods=methods,
        runs_dir=str(raw.get("runs_dir", Path("runs") / path.stem)),
        data_dir=raw.get("data_dir"),
        train_flags=dict(raw.get("train", {})),
        score_flags=dict(raw.get("score", {})),
        table_p=float(raw.get("table_p", DEFAULT_SPARSITY)),
        launcher=_launcher(raw.get("launcher"), str(path)),
        pooler=pooler,
    )


# Flags a grid sets for every run itself: a config cannot set them.
_SET_BY_GRID = {
    "output",
    "task",
    "model",
    "seed",
    "data_dir",
    "mask",
    "method",
    "method_options",
    "resume",
    "force",
    "p",
    "save_scores",
}
# Bounds of the values `score` takes, where they differ from the run hyperparameters'.
_SCORE_BOUNDS = {
    "examples": schema.nullable(schema.integer(1)),
    "scope": schema.string(schema.SCOPES),
}


def _flags_spec(config_class: type, bounds: dict[str, schema.Expect]) -> schema.table:
    """The keys of a `[train]`/`flags` (or `[score]`/`score_flags`) table: the fields of
    the stage's config that a grid does not set itself, each with its type and range."""
    import dataclasses

    fields = {}
    for item in dataclasses.fields(config_class):
        if item.name in _SET_BY_GRID:
            continue
        annotation = str(item.type)
        if item.name in bounds:
            expect = bounds[item.name]
        elif annotation.startswith("bool"):
            expect = schema.boolean()
        elif annotation.startswith("int"):
            expect = schema.integer()
        elif annotation.startswith("float"):
            expect = schema.number()
        elif annotation.startswith("str"):
            expect = schema.string()
        else:
            expect = schema.ANY
        fields[item.name] = schema.nullable(expect) if "None" in annotation and item.name not in bounds else expect
    return schema.table(fields, closed=True)


def _grid_spec() -> schema.table:
    from ..methods import METHODS
    from ..scoring import SCORERS

    methods, scorers = tuple(METHODS), tuple(SCORERS)
    train = _flags_spec(TrainConfig, dict(schema.HYPERPARAMETERS.fields))
    score = _flags_spec(ScoreConfig, {**dict(schema.HYPERPARAMETERS.fields), **_SCORE_BOUNDS})
    option = schema.any_of((schema.string(empty=True), schema.number(), schema.boolean()))
    method = schema.table(
        {
            "name": schema.string(),
            "train": schema.string(methods),
            "score": schema.string(scorers),
            "p": schema.any_of((schema.FRACTION, schema.list_of(schema.FRACTION, min_items=1, unique=True))),
            "flags": train,
            "score_flags": score,
            "options": schema.dict_of(option),
        },
        required=("name",),
        closed=True,
    )
    return schema.table(
        {
            "model": schema.string(),
            "tasks": schema.any_of((schema.string(), schema.list_of(schema.string(), min_items=1, unique=True))),
            "seeds": schema.any_of(
                (schema.integer(0, MAX_SEED), schema.list_of(schema.integer(0, MAX_SEED), min_items=1, unique=True))
            ),
            "methods": schema.list_of(method, min_items=1),
            "runs_dir": schema.string(),
            "data_dir": schema.string(),
            "train": train,
            "score": score,
            "table_p": schema.FRACTION,
            "launcher": schema.string(empty=True),
            "pooler": schema.string(POOLER_POLICIES),
        },
        required=("tasks", "seeds", "methods"),
        closed=True,
    )


def _check(raw: dict[str, Any], path: Path) -> None:
    """Every key and value of a grid config, before anything runs: types, ranges, known
    tasks, methods and method options (a typo would otherwise fail every run, one by one)."""
    from ..methods.base import parse_options
    from ..tasks import get_task

    schema.validate(raw, _grid_spec(), f"grid config {path}")
    tasks = raw["tasks"] if isinstance(raw["tasks"], list) else [raw["tasks"]]
    for index, task in enumerate(tasks):
        try:
            get_task(task)
        except SparsetuneError as err:
            raise FileFormatError(f"grid config {path}: tasks[{index}]: {err}") from None
    from ..methods import get_method
    from ..runtime import DEVICES, check_device

    flag_tables = [("train", raw.get("train")), ("score", raw.get("score"))]
    for index, method in enumerate(raw["methods"]):
        where = f"grid config {path}: methods[{index}] ({method['name']})"
        label = method["name"]
        # The name is a folder of runs_dir (RUNS/NAME/TASK/...) and a row of the report.
        blank = not label.strip() or label != label.strip()  # a folder ` ` or `SAM `: unreadable in a listing
        if blank or label in (".", "..") or any(char in label for char in "/\\") or not label.isprintable():
            raise FileFormatError(
                f"grid config {path}: methods[{index}].name {label!r} names a folder of runs_dir: "
                "no '/', '\\', control characters, '.', '..', or spaces at either end"
            )
        name = method.get("train", "sparse")
        if name == "sparse" and not method.get("score"):
            raise FileFormatError(
                f"{where} trains sparsely but names no "
                'score method (score = "sam") to make its mask, nor another train method'
            )
        if method.get("score") and name != MASK_METHOD:  # the run trains the mask it scores: train= was ignored
            raise FileFormatError(
                f"{where}: score = {method['score']!r} makes a mask, which trains sparsely; "
                f"train = {name!r} would be ignored: drop one of them"
            )
        options = dict(method.get("options") or {})
        if not method.get("score") and "p" in method:  # a method without a mask takes p as its own option
            first = method["p"][0] if isinstance(method["p"], list) else method["p"]
            options["p"] = first
        if options:
            try:
                parse_options(get_method(name).Options, options, name, from_user=True, in_file=True)
            except UsageError as err:
                raise FileFormatError(f"{where}: {err}") from None
        flag_tables += [
            (f"methods[{index}].flags", method.get("flags")),
            (f"methods[{index}].score_flags", method.get("score_flags")),
        ]
    for key, table in flag_tables:
        if table and "device" in table:
            try:
                check_device(table["device"])
            except UsageError:
                raise FileFormatError(
                    f"grid config {path}: {key}.device must be one of {', '.join(DEVICES)}, got {table['device']!r}"
                ) from None


def _launcher(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise FileFormatError(f"{path}: 'launcher' must be a command such as \"torchrun --nproc_per_node 2\"")
    return value


def select(
    grid: GridConfig,
    tasks: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
) -> GridConfig:
    """A slice of `grid`: only the named tasks, methods and seeds (None: all), in the
    config's order. Run ids, run dirs and settings are the whole grid's, so a slice run
    first is skipped, not rerun, when the whole grid runs into the same results file."""

    def kept(given: Sequence | None, known: tuple, flag: str) -> tuple:
        if given is None:
            return known
        unknown = [str(item) for item in given if item not in known]
        if unknown:
            listed = ", ".join(str(item) for item in known)
            raise UsageError(f"{flag} {unknown[0]}: not in grid config {grid.path} (it has: {listed})")
        return tuple(item for item in known if item in given)

    names = kept(methods, tuple(method.name for method in grid.methods), "--methods")
    return replace(
        grid,
        tasks=kept(tasks, grid.tasks, "--tasks"),
        methods=tuple(method for method in grid.methods if method.name in names),
        seeds=kept(seeds, grid.seeds, "--seeds"),
    )


def plan(grid: GridConfig, data_dir: str | None = None) -> list[RunSpec]:
    """Every run, in the order they execute: task-major, so early results cover a task."""
    specs = []
    pooler = {} if grid.pooler is None else {"pooler": grid.pooler}
    for task in grid.tasks:
        for method in grid.methods:
            merged = MethodSpec(
                name=method.name,
                train=method.train,
                score=method.score,
                p=method.p,
                train_flags={**grid.train_flags, **pooler, **method.train_flags},
                score_flags={**grid.score_flags, **pooler, **method.score_flags},
                options=method.options,
            )
            for p in method.p:
                for seed in grid.seeds:
                    specs.append(RunSpec(merged, task, seed, p, grid.model, data_dir or grid.data_dir, grid.runs_dir))
    return specs


def train_settings(spec: RunSpec) -> dict[str, Any]:
    """The run's training settings as `train` will resolve them: its task's defaults (for
    the model and method), then the grid's and the method's flags."""
    from ..defaults import defaults_for
    from ..models import display_name
    from ..tasks import get_task

    task = get_task(spec.task)
    defaults = defaults_for(task.name, display_name(spec.model), spec.method.train, spec.method.score)
    return {**defaults.as_dict(), **spec.method.train_flags}


def check_max_lengths(specs: Sequence[RunSpec], config: str | Path) -> None:
    """Every run's max length (its flag, else its task's default; scoring's too) fits the
    model's position embeddings: a config that asks for more fails here, once, not in
    every run with the advice to rerun. A model whose config cannot be read now is left
    to the runs, which say why."""
    from transformers import AutoConfig

    from ..models import display_name, hub_kwargs, max_positions, resolve_model

    limits: dict[str | None, int | None] = {}
    for spec in specs:
        if spec.model not in limits:
            source = resolve_model(spec.model)
            try:
                limits[spec.model] = max_positions(AutoConfig.from_pretrained(source, **hub_kwargs(source)))
            except (OSError, ValueError, SparsetuneError):
                limits[spec.model] = None
        limit = limits[spec.model]
        if limit is None:
            continue
        lengths = [("max_length", train_settings(spec)["max_length"])]
        if spec.method.score:
            lengths.append(("score max_length", spec.method.score_flags.get("max_length") or MAX_LENGTH))
        for what, length in lengths:
            if length > limit:
                raise FileFormatError(
                    f"grid config {config}: {spec.method.name} on {spec.task}: {what} {length} is more than the "
                    f"{limit} positions of {display_name(spec.model)}"
                )


def spec_to_json(spec: RunSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(text: str) -> RunSpec:
    data = json.loads(text)
    method = data.pop("method")
    method["p"] = tuple(method["p"])
    return RunSpec(method=MethodSpec(**method), **data)
