"""`sparse`: train exactly the entries a mask selects (Fu et al. 2023, arXiv 2211.15583).

    sparsetune score --task cb -p 0.005 && sparsetune train --mask mask.safetensors -o out/

The mask comes from any scoring method (SAM, Fisher, random, BitFit, magnitude); the
mechanism is `sparsetune.sparse`: frozen θ0 plus trainable `values` at the selected
positions, so optimizer state is k (+ head) entries and everything else stays θ0.
"""

from __future__ import annotations

from torch import nn

from .. import sparse
from ..models import LoadedModel
from . import register_method
from .base import TrainingMethod


@register_method("sparse")
class SparseMethod(TrainingMethod):
    """Selected entries of pretrained tensors + the new head (dense)."""

    needs_mask = True

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        assert self.mask is not None
        self.mask.validate_against(self.eligible)
        self.values = sparse.attach(loaded.model, self.mask, self.eligible)
        for parameter in self.head.values():
            parameter.requires_grad_(True)
        return loaded.model

    def trainable(self) -> dict[str, nn.Parameter]:
        # Keyed by the pretrained tensor's name: checkpoints and weight-decay rules
        # read like the model's own names.
        return {**self.values, **self.head}

    def export(self) -> nn.Module:
        return sparse.materialise(self.loaded.model)
