"""g²/ĥ: Theorem 3's criterion with a curvature estimate instead of SAM's constant one.

    sparsetune score --task rte -p 0.005 --method g2h

Fu et al.'s Theorem 3 ranks entry i by g_i² / h_ii (the squared gradient over the
diagonal of the Hessian at θ0); SAM takes h_ii to be one constant and keeps g² alone.
Here ĥ is `fisher`'s score, F = the mean over batches of the squared batch gradient
(weighted by batch size), damped by its mean over every eligible entry, λ:

    score = g² / (F + λ),   g = ∇θ of the mean loss (SAM's g), λ = mean(F)

F is an empirical-Fisher proxy for the curvature, not the Hessian's (or Gauss-Newton's)
diagonal: with batches of B examples F ≈ g² + Var/B (the per-example gradient variance),
so the ranking depends on --batch-size, and with every example in one batch F = g² and
g2h ranks exactly as SAM. The damping keeps entries of almost no curvature from dividing
by nearly zero, and makes the score run between SAM's (entries with F ≪ λ rank by g²)
and the gradient's signal-to-noise ratio g²/F (entries with F ≫ λ: a gradient that
agrees across batches beats one that is large on a few). One pass over the data, three
buffers (the batch gradient, Σg, ΣF); under N processes the sums are reduced once, as
SAM's and Fisher's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Scorer, ScoringContext, batch_moments
from .registry import register_scorer

if TYPE_CHECKING:
    import torch


@register_scorer("g2h")
class CurvatureScorer(Scorer):
    default_lr = 1e-3  # SAM's (chosen on dev, experiments/learn_sweep.toml): a gradient-based mask too; not swept
    weighs_by_share = False  # each batch's gradient on its own: loss weight 1
    description = "g² over fisher's score, damped (Theorem 3's g²/h, an empirical-Fisher proxy for h)"

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        gradients, fisher = batch_moments(context)
        entries = sum(value.numel() for value in fisher.values())
        damping = sum(float(value.double().sum()) for value in fisher.values()) / max(entries, 1)
        if damping <= 0.0:  # no gradient reached any entry: every score is 0, as SAM's would be
            damping = 1.0
        return {name: gradient.pow_(2).div_(fisher.pop(name).add_(damping)) for name, gradient in gradients.items()}
