"""`full`: plain fine-tuning of every parameter, the paper's FullTuning row
(Table 1).

    sparsetune train --method full --task cb -o out/
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import TrainingMethod
from .registry import register_method

if TYPE_CHECKING:
    from torch import nn

    from ..models import LoadedModel


@register_method("full")
class FullMethod(TrainingMethod):
    """Every tensor trains; the reference point for speed, memory and accuracy."""

    title = "Full"
    default_lr = 3e-5  # chosen on dev over cola, stsb, mrpc, rte (experiments/learn_sweep.toml)

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(True)
        return loaded.model

    def trainable(self) -> dict[str, nn.Parameter]:
        return dict(self.loaded.model.named_parameters())

    def export(self) -> nn.Module:
        return self.loaded.model
