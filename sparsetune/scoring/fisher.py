"""Empirical Fisher scores: the mean over batches of the squared batch gradient, each
batch weighted by its share of the examples (a short last batch counts as its examples).

    sparsetune score --task rte -p 0.005 --method fisher --batch-size 1

With `--batch-size 1` this is the empirical Fisher information of FISH masks (Sung et
al. 2021), and the `fisher` variant in the released code of Fu et al. 2023. Unlike SAM
it rewards entries whose gradient is large on single batches even when the signs
cancel over the set. Needs one extra buffer (the running sum) beside `.grad`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Scorer, ScoringContext, batch_moments
from .registry import register_scorer

if TYPE_CHECKING:
    import torch


@register_scorer("fisher")
class FisherScorer(Scorer):
    default_lr = 1e-3  # SAM's (chosen on dev, experiments/learn_sweep.toml): a gradient-based mask too; not swept
    weighs_by_share = False  # each batch's gradient on its own: loss weight 1
    description = "mean of squared per-batch gradients, by batch size (FISH with --batch-size 1)"

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        return batch_moments(context, with_mean=False)[1]
