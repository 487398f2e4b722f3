"""Default hyperparameters per task, chosen for the embedded MiniLM on the held-out dev
part of train only (never on validation, which is the test set; Fu et al. 2023,
arXiv 2211.15583, protocol). How each value was chosen is in README.md, "Training
defaults"; the sweep that chose them:

    python benchmarks/sweep_defaults.py

Other models and custom tasks get `GENERIC`: the paper's setting (AdamW, lr 1e-4,
batch 16) with max length 128.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .models import DEFAULT_MODEL_NAME


@dataclass(frozen=True)
class Hyperparameters:
    epochs: int
    lr: float
    batch_size: int
    max_length: int
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0

    def as_dict(self) -> dict:
        return asdict(self)


GENERIC = Hyperparameters(epochs=10, lr=1e-4, batch_size=16, max_length=128)

# Embedded MiniLM-L6-H384, sparse training at p = 0.005 (see README for the sweep).
MINILM: dict[str, Hyperparameters] = {
    "cola": Hyperparameters(epochs=3, lr=1e-3, batch_size=32, max_length=64),
    "stsb": Hyperparameters(epochs=3, lr=1e-3, batch_size=32, max_length=128),
    "mrpc": Hyperparameters(epochs=5, lr=1e-3, batch_size=32, max_length=128),
    "rte": Hyperparameters(epochs=5, lr=1e-3, batch_size=16, max_length=128),
    "cb": Hyperparameters(epochs=10, lr=1e-3, batch_size=16, max_length=128),
    "copa": Hyperparameters(epochs=10, lr=1e-3, batch_size=16, max_length=64),
    "wsc": Hyperparameters(epochs=10, lr=1e-3, batch_size=16, max_length=128),
}


def defaults_for(task: str, model: str) -> Hyperparameters:
    """Per-task defaults for the embedded MiniLM; `GENERIC` for any other model or task."""
    if model == DEFAULT_MODEL_NAME and task in MINILM:
        return MINILM[task]
    return GENERIC
