"""sparsetune: sparse fine-tuning of transformers.

It implements Fu et al., "On the Effectiveness of Parameter-Efficient Fine-Tuning" (AAAI
2023, arXiv 2211.15583); "the paper" in the docstrings of this package means it.

    sparsetune score --task rte -p 0.005      # SAM: one gradient pass -> mask.safetensors
    sparsetune train --mask mask.safetensors -o out/
    sparsetune eval out/

The package is the library; `sparsetune.cli` is a thin shell over it. The folders follow
the pipeline:

    stages/       one module (or package) per verb: score, train/, evaluate, diff, apply, inspect
    scoring/      who picks the entries: registry.py + one file per scorer (sam, fisher, random, ...)
    methods/      how a model trains: registry.py + one file per method (sparse, full, lora, ...)
    formats/      one module per file kind: mask, scores, delta, run record, checkpoint, method dir, log
    core/         tensor maths, no files: the sparse parametrization and its autograd, top-k, gates
    experiments/  the paper's grid, its report and figures
    cli/          the commands, one module each
    config.py (stage configs, default values), defaults.py (per-task hyperparameters), models.py,
    data.py, tasks/, runtime.py (device, precision, processes), io.py, hub.py, errors.py
"""

import importlib
from typing import Any

from ._version import __version__

# The public API, imported on first use (PEP 562): `import sparsetune` and the CLI's
# `--help` must not pay for torch, transformers and scipy before a command needs them.
_API = {
    "ApplyConfig": "config",
    "DiffConfig": "config",
    "EvalConfig": "config",
    "MaskConfig": "config",
    "ScoreConfig": "config",
    "TrainConfig": "config",
    "apply": "stages.apply",
    "apply_delta": "stages.apply",
    "diff": "stages.diff",
    "SparsetuneError": "errors",
    "evaluate": "stages.evaluate",
    "Delta": "formats.delta",
    "Mask": "formats.mask",
    "RunRecord": "formats.run_record",
    "load_model": "models",
    "load_tokenizer": "models",
    "ScoreResult": "stages.score",
    "rethreshold": "stages.score",
    "score": "stages.score",
    "TASKS": "tasks",
    "Task": "tasks",
    "get_task": "tasks",
    "train": "stages.train",
}


def __getattr__(name: str) -> Any:
    if name in _API:
        value = getattr(importlib.import_module(f".{_API[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sparsetune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])


__all__ = [
    "ApplyConfig",
    "Delta",
    "DiffConfig",
    "EvalConfig",
    "Mask",
    "MaskConfig",
    "RunRecord",
    "ScoreConfig",
    "ScoreResult",
    "SparsetuneError",
    "TASKS",
    "Task",
    "TrainConfig",
    "__version__",
    "apply",
    "apply_delta",
    "diff",
    "evaluate",
    "get_task",
    "load_model",
    "load_tokenizer",
    "rethreshold",
    "score",
    "train",
]
