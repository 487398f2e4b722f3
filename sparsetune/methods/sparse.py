"""`sparse`: train exactly the entries a mask selects (Fu et al. 2023, arXiv 2211.15583).

    sparsetune score --task cb -p 0.005 && sparsetune train --mask mask.safetensors -o out/

The mask comes from any scoring method (SAM, Fisher, random, BitFit, magnitude); the
mechanism is `sparsetune.sparse`: frozen θ0 plus trainable `values` at the selected
positions, so optimizer state is k (+ head) entries and everything else stays θ0.

The step computes ∂L/∂values without a dense weight gradient (`sparsetune.sparse_delta`).
`--method-option backward=reference` trains through the plain parametrization instead
(dense gradient, then gather): the same numbers to ~1e-7, at the cost of a full step;
kept to check the fast path against.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import sparse, sparse_delta
from ..errors import UsageError
from ..models import LoadedModel
from . import register_method
from .base import TrainingMethod


@dataclass(frozen=True)
class SparseOptions:
    backward: str = "sparse"  # sparse: ∂L/∂values only (sparse_delta); reference: the parametrization


@register_method("sparse")
class SparseMethod(TrainingMethod):
    """Selected entries of pretrained tensors + the new head (dense)."""

    needs_mask = True
    Options = SparseOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        assert self.mask is not None
        self.mask.validate_against(self.eligible)
        factories = {"sparse": sparse_delta.SparseDelta, "reference": sparse.SelectedValues}
        if self.options.backward not in factories:
            raise UsageError(f"--method-option backward must be one of {', '.join(factories)}, got {self.options.backward!r}")
        self.values = sparse.attach(loaded.model, self.mask, self.eligible, factory=factories[self.options.backward])
        for parameter in self.head.values():
            parameter.requires_grad_(True)
        return loaded.model

    def trainable(self) -> dict[str, nn.Parameter]:
        # Keyed by the pretrained tensor's name: checkpoints and weight-decay rules
        # read like the model's own names.
        return {**self.values, **self.head}

    def export(self) -> nn.Module:
        return sparse.materialise(self.loaded.model)
