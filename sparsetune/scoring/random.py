"""Random masks: the paper's "Random" row, entries drawn uniformly at density p.

    sparsetune score --task cb -p 0.005 --method random --seed 1

The paper (Table 1) shows that even a random p-sparse mask
fine-tunes well: sparsity itself stabilises training. Each eligible entry gets an
i.i.d. uniform score from a generator seeded by `--seed`, and the usual top-k keeps
⌊m·p⌋ of them (`--scope global`) or ⌊n_t·p⌋ per tensor (`--scope per-tensor`): a
uniformly random subset of exactly that size, the same for the same seed. Saving the
scores (`--save-scores`) gives nested masks across p with `sparsetune mask`. No data
and no gradient pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Scorer, ScoringContext
from .registry import register_scorer

if TYPE_CHECKING:
    import torch


@register_scorer("random")
class RandomScorer(Scorer):
    default_lr = 1e-2  # chosen on dev over cola, stsb, mrpc, rte (experiments/learn_sweep.toml)
    description = "uniformly random entries at density p (seeded)"
    needs_data = False

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        import torch

        # One generator over the tensors in model order: the mask depends on the seed and
        # the shapes only, never on the values of θ0 or on the global RNG state.
        generator = torch.Generator().manual_seed(context.seed)
        return {
            name: torch.rand(parameter.shape, generator=generator, dtype=torch.float32)  # shaped like θ
            for name, parameter in context.loaded.eligible().items()
        }
