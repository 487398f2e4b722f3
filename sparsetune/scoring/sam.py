"""SAM, the paper's Second-order Approximation Method (its Theorem 3).

    sparsetune score --task rte -p 0.005 --method sam

score = g², g = ∇θ of the *mean* training loss over the scoring examples at θ0.
Batches are accumulated in place into `.grad`, each weighted by its share of the
examples, so the result equals one backward over the whole set while memory stays at
the model plus one gradient buffer. Under N processes each accumulates its shard with
the same global weights and the buffers are summed once: the same g, within rounding.
(The paper's code summed clipped batch gradients with dropout on; this is the quantity
its Theorem 3 asks for.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Scorer, ScoringContext, eligible_gradients, gradient_steps
from .registry import register_scorer

if TYPE_CHECKING:
    import torch


@register_scorer("sam")
class SamScorer(Scorer):
    default_lr = 1e-3  # chosen on dev over cola, stsb, mrpc, rte (experiments/learn_sweep.toml)
    description = "square of the mean training-loss gradient at θ0 (the paper)"

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        total = context.num_examples
        for _ in gradient_steps(context, loss_weight=lambda size: size / total, fresh_gradients=False):
            pass
        gradients = {name: context.reduce_sum(gradient) for name, gradient in eligible_gradients(context).items()}
        # Squared in place: the scores reuse the gradient buffer instead of adding one.
        scores = {name: gradient.float().pow_(2) for name, gradient in gradients.items()}  # each shaped like θ
        for parameter in context.loaded.eligible().values():
            parameter.grad = None  # the buffer now belongs to the scores
        return scores
