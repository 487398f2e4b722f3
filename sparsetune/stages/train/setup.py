"""Turning a `TrainConfig` into a ready run (what `OUT/` becomes is `outputs.py`).

    sparsetune train --mask mask.safetensors -o out/

Everything the training loop needs is resolved here, once: the mask and what its
metadata implies (model, task, the pooler policy it was scored with, and the dev split
it was scored without, so model selection never sees scored data), per-task defaults,
the resume contract (flags left out take the interrupted run's values; a differing
value is an error), and output safety (refuse an existing OUT unless --force or
--resume).
"""

from __future__ import annotations

import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ...config import DEFAULT_DEV_FRACTION, DEFAULT_SEED, MASK_FILE, MASK_METHOD, MAX_SEED, OPTIMISATION, TrainConfig
from ...data import TaskData, load_task_data
from ...defaults import defaults_for
from ...errors import FileFormatError, MismatchError, OutputError, OutputExistsError, SparsetuneError, UsageError
from ...formats.checkpoint import has_checkpoint, load_checkpoint
from ...formats.integrity import file_digest
from ...formats.mask import Mask
from ...formats.run_record import is_run_dir
from ...hub import is_local
from ...io import check_named, check_not_an_input, check_replaceable, check_writable, is_special
from ...methods import get_method
from ...methods.base import TrainingMethod
from ...models import (
    DEFAULT_POOLER,
    LEGACY_POOLER,
    check_max_length,
    check_pooler,
    display_name,
    load_model,
    load_tokenizer,
    recorded_pooler,
    resolve_model,
)
from ...run_lock import check_free, has_stale_lock
from ...runtime import DEFAULT_PRECISION, check_precision
from ...tasks import Task, get_task

# Hyperparameters a resumed run must share with the interrupted one.
RESUMABLE = (
    "method",
    "model",
    "task",
    *OPTIMISATION,
    "eval_every",
    "dev_fraction",
    "method_options",
    "precision",
    "pooler",
    "revision",
)


@dataclass(frozen=True)
class ResolvedHyperparameters:
    """A run's resolved settings, every default (`defaults.Hyperparameters`, per task)
    filled in (None only where it means something: no step cap, no periodic evaluation,
    no pinned revision), so that run.json and every checkpoint record them whole
    (`as_record`), a rerun needs no flags, and a --resume reads them back (`from_record`)
    and must match them (`RESUMABLE`)."""

    method: str
    model: str
    task: str
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    warmup_ratio: float
    weight_decay: float
    max_grad_norm: float
    seed: int
    split_seed: int  # the seed of the dev split: a mask's, so that model selection never sees scored data
    dev_fraction: float
    precision: str
    pooler: str
    max_steps: int | None = None
    eval_every: int | None = None
    revision: str | None = None
    method_options: dict[str, str] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any], where: str) -> "ResolvedHyperparameters":
        """The hyperparameters a checkpoint recorded (checked by its schema on load)."""
        # Runs from before these were recorded trained in fp32, with the pooler eligible.
        record = {"precision": DEFAULT_PRECISION, "pooler": LEGACY_POOLER, **record}
        required = [item.name for item in fields(cls) if item.default is MISSING and item.default_factory is MISSING]
        missing = [name for name in required if name not in record]
        if missing:  # what the schema leaves optional, for records from before these were kept
            raise FileFormatError(
                f"{where} does not record the hyperparameter(s) {', '.join(missing)}; it was edited, or written by "
                "another version: start over with --force"
            )
        names = {item.name for item in fields(cls)}
        return cls(**{key: value for key, value in record.items() if key in names})


@dataclass
class RunSetup:
    output: Path
    hyper: ResolvedHyperparameters
    task: Task
    data: TaskData
    tokenizer: Any
    model: Any
    method: TrainingMethod
    mask_sha256: str | None
    mask_path: Path | None = None  # the mask to copy into OUT when the run is new
    resume: bool = False


def _requested(config: TrainConfig, mask: Mask | None) -> dict[str, Any]:
    """What the user asked for, with the mask's metadata filling model/task/split."""
    meta = mask.metadata if mask else {}
    method = config.method or (MASK_METHOD if mask else None)
    if method is None:
        raise UsageError("pass --mask mask.safetensors (sparse training) or --method NAME (e.g. --method full)")
    task = config.task or meta.get("task")
    if task is None:
        raise UsageError("--task is required when no mask names the task")
    if not config.task:  # the mask's task: a name or path that no longer resolves is the file's problem
        try:
            get_task(str(task))
        except SparsetuneError as err:
            raise FileFormatError(
                f"{config.mask}: its task {task!r} cannot be used here ({err}); pass --task"
            ) from None
    recorded = meta.get("model")
    if not config.model and recorded and is_local(str(recorded)) and not Path(str(recorded)).expanduser().exists():
        raise FileFormatError(  # masks from before recorded a local folder as typed (`../bert`)
            f"{config.mask}: it was scored on the local folder {recorded!r}, which is not there from "
            f"{Path.cwd()}; pass the model: sparsetune train MODEL --mask {config.mask} ..."
        )
    return {
        "method": method,
        "model": display_name(config.model or recorded or None),
        "task": str(task),
        "dev_fraction": config.dev_fraction or meta.get("dev_fraction") or None,
        "split_seed": meta.get("seed"),
        **{
            key: getattr(config, key)
            for key in RESUMABLE
            if key not in ("method", "model", "task", "dev_fraction", "pooler", "revision")
        },
        "revision": config.revision or meta.get("revision") or None,
        "method_options": _option_texts(config.method_options),
        "pooler": _pooler(config, mask),
    }


def _option_texts(options) -> dict[str, str]:
    """Method options as the CLI and the grid record them, text (`lora_r=8`): a Python
    caller's {"lora_r": 8} is the same run, and resumes as one."""
    return {
        str(key): str(value).lower() if isinstance(value, bool) else str(value) for key, value in dict(options).items()
    }


def _pooler(config: TrainConfig, mask: Mask | None) -> str:
    """The flag, else the mask's policy (its p counts over its own eligible set, so a mask
    is trained with the policy it was scored with), else the default ("head")."""
    given = check_pooler(config.pooler) if config.pooler is not None else None
    if mask is None:
        return given or DEFAULT_POOLER
    made = recorded_pooler(mask.metadata, mask.shapes, config.mask)
    if given is not None and given != made:
        raise UsageError(
            f"--pooler {given}: the mask {config.mask} was made with --pooler {made}; drop --pooler to use the mask's"
        )
    return made


def _check_resume(config: TrainConfig, hyper: ResolvedHyperparameters) -> ResolvedHyperparameters:
    """Flags left out resume as before; a flag given with another value is refused, by name."""
    stored = hyper.as_record()
    for key in RESUMABLE:
        value = getattr(config, key, None)
        if value in (None, ()):
            continue
        if key == "model":  # as recorded now: runs from before recorded a local folder as typed
            value, stored_value = display_name(value), display_name(stored.get(key))
        elif key == "task":
            value, stored_value = get_task(value).name, get_task(stored[key]).name
        elif key == "method_options":
            value = _option_texts(value)
        if value != (stored_value if key in ("model", "task") else stored.get(key)):
            # How the command line names it: MODEL is an argument; options come from -O/--method-option.
            named = {"model": "MODEL", "method_options": "--method-option"}.get(key, f"--{key.replace('_', '-')}")
            raise UsageError(f"{named} {value} differs from the interrupted run's {stored.get(key)}; drop it to resume")
    return hyper


def _resolve(requested: dict[str, Any], scorer: str | None = None) -> ResolvedHyperparameters:
    """The request with every unset value from the defaults (the mask's `scorer` may
    declare the learning rate of a sparse run)."""
    task = get_task(requested["task"])
    defaults = defaults_for(task.name, requested["model"], requested["method"], scorer).as_dict()
    hyper = {key: (defaults[key] if value is None and key in defaults else value) for key, value in requested.items()}
    hyper["seed"] = DEFAULT_SEED if hyper["seed"] is None else hyper["seed"]
    hyper["precision"] = check_precision(hyper["precision"] or DEFAULT_PRECISION)
    hyper["dev_fraction"] = hyper["dev_fraction"] or DEFAULT_DEV_FRACTION
    hyper["split_seed"] = hyper["seed"] if hyper["split_seed"] is None else hyper["split_seed"]
    for key in ("epochs", "batch_size", "max_length"):
        if int(hyper[key]) < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be at least 1, got {hyper[key]}")
    for key in ("max_steps", "eval_every"):
        if hyper[key] is not None and hyper[key] < 1:
            raise UsageError(f"--{key.replace('_', '-')} must be at least 1, got {hyper[key]}")
    if not 0 < hyper["lr"] < math.inf:
        raise UsageError(f"--lr must be a positive number, got {hyper['lr']}")
    if not 0 <= hyper["warmup_ratio"] < 1:
        raise UsageError(f"--warmup-ratio must be in [0, 1), got {hyper['warmup_ratio']}")
    if not 0 <= hyper["weight_decay"] < math.inf:
        raise UsageError(f"--weight-decay must be 0 or a positive number, got {hyper['weight_decay']}")
    if not 0 < hyper["max_grad_norm"] < math.inf:
        raise UsageError(f"max_grad_norm must be a positive number, got {hyper['max_grad_norm']}")
    if not 0 <= hyper["seed"] <= MAX_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_SEED}], got {hyper['seed']}")
    return ResolvedHyperparameters(**hyper)


def prepare_run(config: TrainConfig) -> RunSetup:
    """Check inputs and load everything; write nothing (see `claim_output`)."""
    check_named(config.output, "-o")
    out = Path(config.output)
    if config.resume and config.force:
        raise UsageError("--resume and --force contradict each other: --resume continues OUT, --force replaces it")
    if config.precision is not None:
        check_precision(config.precision)
    if is_special(out):
        raise OutputError(f"-o {out} is a device or a pipe, not a folder for a run")
    if out.is_file():  # --force replaces a run dir, never a file in its place (a mask named by mistake)
        raise OutputError(f"-o {out} is a file, not a folder for a run; give a folder name")
    check_free(out)  # a live process trains OUT: neither resume, replace nor take it over
    if config.resume:
        if not has_checkpoint(out):
            if abandoned(out):
                raise UsageError(
                    f"--resume: {out} stopped before its first checkpoint, so there is nothing to resume; "
                    "run the same command without --resume to start it over"
                )
            raise UsageError(f"--resume: no checkpoint in {out}/checkpoint; start without --resume")
        checkpoint_info = load_checkpoint(out).info
        stored = ResolvedHyperparameters.from_record(checkpoint_info["hyperparameters"], f"{out}/checkpoint")
    else:
        if out.exists() and not config.force and not abandoned(out):
            if out.is_dir() and not has_checkpoint(out) and not is_run_dir(out):
                raise OutputExistsError(
                    f"{out} already exists and holds no checkpoint to resume; pass --force to replace it"
                )
            raise OutputExistsError(
                f"{out} already exists; pass --force to replace it, or --resume to continue its run"
            )
    check_writable(out, "-o", folder=True)  # a read-only folder fails now, before anything loads
    if not config.resume:
        check_replaceable(out, "-o")  # `-o . --force` would empty the folder the command runs in
    mask_path = Path(config.mask) if config.mask else None
    if config.resume and mask_path is None and get_method(stored.method).needs_mask:
        mask_path = out / MASK_FILE  # the copy written when the run started
    mask = Mask.load(mask_path) if mask_path else None
    if config.resume and config.mask and file_digest(Path(config.mask)) != file_digest(out / MASK_FILE):
        raise UsageError(f"--mask {config.mask} is not the mask {out} was trained with; drop --mask to resume")
    recorded_mask = checkpoint_info.get("mask_sha256") if config.resume else None
    if recorded_mask is not None and (mask_path is None or file_digest(mask_path) != recorded_mask):
        # A valid mask of the same counts per tensor would load the checkpoint's values
        # into other entries: a silently different model (checkpoints from before: unchecked).
        raise MismatchError(
            f"{out / MASK_FILE} is not the mask the checkpoint in {out} was trained with (its sha256 differs); "
            "put the run's mask back, or start over with --force"
        )
    scorer = mask.metadata.get("method") if mask is not None else None  # the scoring method that made the mask
    hyper = _check_resume(config, stored) if config.resume else _resolve(_requested(config, mask), scorer)
    if not config.resume:  # --force replaces OUT: never with the base model or the data inside it
        check_not_an_input(out, [resolve_model(hyper.model), config.data_dir])
    method_cls = get_method(hyper.method)
    if mask is not None and not method_cls.needs_mask:
        raise UsageError(f"--mask is used by --method sparse only; method {hyper.method!r} does not take one")
    task = get_task(hyper.task)
    data = load_task_data(task, config.data_dir, dev_fraction=hyper.dev_fraction, seed=hyper.split_seed)
    tokenizer = load_tokenizer(hyper.model, hyper.revision)
    loaded = load_model(hyper.model, task, seed=hyper.seed, pooler=hyper.pooler, revision=hyper.revision)
    check_max_length(loaded.model, hyper.max_length)
    method = method_cls(mask, hyper.method_options)
    model = method.bind(loaded)
    digest = file_digest(mask_path) if mask_path is not None else None  # the bytes OUT's copy will hold
    return RunSetup(out, hyper, task, data, tokenizer, model, method, digest, mask_path, config.resume)


def abandoned(out: Path) -> bool:
    """OUT is what a run killed before its first checkpoint left: its lock file (stale),
    no checkpoint and no finished run. Rerunning the same command takes it over."""
    return out.is_dir() and has_stale_lock(out) and not has_checkpoint(out) and not is_run_dir(out)
