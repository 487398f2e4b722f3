"""Magnitude masks: the paper's MagPruning row (Han et al. 2015), the top-⌊m·p⌋ by |θ0|.

    sparsetune score --task cb -p 0.005 --method magnitude

The paper treats magnitude pruning as a p-sparse fine-tuning
method: keep the ⌊m·p⌋ eligible entries of largest absolute pretrained value trainable
and freeze the rest. The score is |θ0| (float32), so the selection depends on the
model alone: no data, no gradient pass, the same mask for every task and seed (ties go
to the lower position, as for every top-k here).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Scorer, ScoringContext
from .registry import register_scorer

if TYPE_CHECKING:
    import torch


@register_scorer("magnitude")
class MagnitudeScorer(Scorer):
    default_lr = 1e-3  # chosen on dev over cb, copa (experiments/lr_sweep.toml: 1e-3 over 1e-4)
    description = "largest |θ0| (MagPruning, Han et al. 2015)"
    needs_data = False

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        import torch

        with torch.no_grad():
            # abs() makes the copy; .float() is a no-op for float32 weights. Shaped like θ.
            return {name: parameter.detach().abs().float() for name, parameter in context.loaded.eligible().items()}
