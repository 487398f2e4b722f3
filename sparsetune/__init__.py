"""sparsetune: sparse fine-tuning of transformers, after Fu et al. 2023 (arXiv 2211.15583).

    sparsetune score --task rte -p 0.005      # SAM: one gradient pass -> mask.safetensors
    sparsetune train --mask mask.safetensors -o out/
    sparsetune eval out/

The package is the library; `sparsetune.cli` is a thin shell over it.
"""

__version__ = "0.1.0"

from .config import EvalConfig, TrainConfig
from .delta import apply_delta, diff
from .errors import SparsetuneError
from .evaluation import evaluate
from .formats import Mask
from .models import load_model, load_tokenizer
from .scoring.run import ScoreResult, rethreshold, score
from .tasks import TASKS, Task, get_task
from .training import train

__all__ = [
    "EvalConfig",
    "Mask",
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
