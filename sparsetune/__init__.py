"""sparsetune: sparse fine-tuning of transformers, after Fu et al. 2023 (arXiv 2211.15583).

    sparsetune score --task rte -p 0.005      # SAM: one gradient pass -> mask.safetensors
    sparsetune train --mask mask.safetensors -o out/
    sparsetune eval out/

The package is the library; `sparsetune.cli` is a thin shell over it.
"""

import importlib
from typing import Any

from ._version import __version__

# The public API, imported on first use (PEP 562): `import sparsetune` and the CLI's
# `--help` must not pay for torch, transformers and scipy before a command needs them.
_API = {
    "EvalConfig": "config", "ScoreConfig": "config", "TrainConfig": "config",
    "apply_delta": "stages.apply", "diff": "stages.diff",
    "SparsetuneError": "errors",
    "evaluate": "stages.evaluate",
    "Mask": "formats.mask",
    "load_model": "models", "load_tokenizer": "models",
    "ScoreResult": "stages.score", "rethreshold": "stages.score", "score": "stages.score",
    "TASKS": "tasks", "Task": "tasks", "get_task": "tasks",
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
    "EvalConfig",
    "Mask",
    "ScoreConfig",
    "ScoreResult",
    "SparsetuneError",
    "TASKS",
    "Task",
    "TrainConfig",
    "__version__",
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
