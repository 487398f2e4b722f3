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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_SPARSITY, MASK_METHOD, POOLER_POLICIES
from ..errors import UsageError

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
    raise UsageError(f"{path}: {key!r} must be a list")


def _method(raw: dict[str, Any], index: int, path: str) -> MethodSpec:
    if not isinstance(raw, dict) or "name" not in raw:
        raise UsageError(f"{path}: [[methods]] entry {index + 1} needs a name")
    known = {"name", "train", "score", "p", "flags", "score_flags", "options"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise UsageError(f"{path}: method {raw['name']!r} has unknown key {unknown[0]!r} (known: {', '.join(sorted(known))})")
    p = _tuple(raw.get("p", [None]), "p", path)
    if raw.get("score") and p == (None,):
        raise UsageError(f"{path}: method {raw['name']!r} scores a mask, so it needs p = [...]")
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
            raise UsageError(f"grid config {path} is not valid YAML: {problem}{where}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise UsageError(f"grid config {path} is not valid TOML: {err}") from None


def load_grid(path: str | Path) -> GridConfig:
    """Parse and check a grid config; errors name the file and the key."""
    path = Path(path)
    try:
        raw = _parse(path.read_text(encoding="utf-8"), path)
    except OSError as err:
        raise UsageError(f"cannot read grid config {path}: {err.strerror}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"grid config {path} is not a table of keys (model, tasks, seeds, methods)")
    for key in ("tasks", "seeds", "methods"):
        if key not in raw:
            raise UsageError(f"grid config {path} has no {key!r}")
    pooler = raw.get("pooler")
    if pooler is not None and pooler not in POOLER_POLICIES:
        raise UsageError(f"grid config {path}: pooler must be one of {', '.join(POOLER_POLICIES)}, got {pooler!r}")
    methods = tuple(_method(item, index, str(path)) for index, item in enumerate(raw["methods"]))
    names = [method.name for method in methods]
    if len(set(names)) != len(names):
        raise UsageError(f"grid config {path}: method names must be unique")
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


def _launcher(value: Any, path: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise UsageError(f"{path}: 'launcher' must be a command such as \"torchrun --nproc_per_node 2\"")
    return value


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


def spec_to_json(spec: RunSpec) -> str:
    return json.dumps(asdict(spec), sort_keys=True)


def spec_from_json(text: str) -> RunSpec:
    data = json.loads(text)
    method = data.pop("method")
    method["p"] = tuple(method["p"])
    return RunSpec(method=MethodSpec(**method), **data)
