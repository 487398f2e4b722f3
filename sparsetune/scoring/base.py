"""The scorer interface: per-entry scores for the eligible tensors, then a selection.

    sparsetune score --task cb -p 0.005 --method fisher

The paper ranks entries by a score and keeps the top ⌊m·p⌋.
Methods differ in the score (SAM: squared mean gradient; Fisher: mean squared batch
gradient; magnitude: |θ0|) and a few fix the selection themselves (BitFit takes the
biases whatever p is), so a scorer has two steps:

- `compute(context)` -> {name: float32 tensor shaped like the parameter}. Scorers that
  set `needs_data = False` get no batches, and `score` skips loading data for them (and
  runs no forward or backward: random, magnitude, bitfit).
- `select(scores, p, scope, metadata)` -> `Mask`; by default the top-k of the scores.
  Scorers whose selection ignores p set `fixed_selection = True` (bitfit), and `score`
  notes an explicit -p as ignored.

`gradient_steps` is the one data pass gradient scorers share. Under a multi-process
launch `batches` is this process's shard of the batches; a scorer sums its accumulators
over processes with `context.reduce_sum` once, at the end, so that every process
computes the same scores as one process would (the weights use the global counts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, ClassVar, Iterable, Iterator, Mapping

from ..errors import NumericalError
from ..progress import ProgressCallback, no_progress

if TYPE_CHECKING:  # a scorer module imports no torch: the CLI reads the registry at start-up
    import torch

    from ..formats.mask import Mask
    from ..models import LoadedModel


@dataclass
class ScoringContext:
    """What a scorer may look at. `batches` is None when the scorer needs no data."""

    loaded: LoadedModel
    batches: Iterable[dict[str, torch.Tensor]] | None  # this process's shard
    num_batches: int  # over all processes
    num_examples: int  # over all processes
    seed: int
    progress: ProgressCallback = no_progress
    # Placement and processes (`sparsetune.runtime`); the defaults run on the CPU, alone.
    send: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] = lambda batch: batch
    reduce_sum: Callable[[torch.Tensor], torch.Tensor] = lambda tensor: tensor
    # A power of two multiplying every backward (fp16 only): exact to undo, and it keeps
    # small per-batch gradients out of fp16's subnormal range.
    loss_scale: float = 1.0


class Scorer:
    """Base class; subclasses register with `@register_scorer(name)`."""

    name: ClassVar[str] = ""
    needs_data: ClassVar[bool] = True
    fixed_selection: ClassVar[bool] = False  # True: the mask does not depend on p
    description: ClassVar[str] = ""
    # The learning rate `train` takes for a mask of this scorer when --lr is not given
    # (None: the task's, defaults.py). Masks of one size but another placement train best
    # at different rates: SAM's entries carry the large gradients, a random mask's do not.
    default_lr: ClassVar[float | None] = None
    # How `gradient_steps` weighs each batch's mean loss: by its share of the examples
    # (SAM's one gradient of the mean loss) or by 1 (fisher's and g2h's per-batch
    # gradients). fp16's loss scale is sized to it (`stages.score`).
    weighs_by_share: ClassVar[bool] = True

    def compute(self, context: ScoringContext) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def select(
        self,
        scores: Mapping[str, torch.Tensor],
        p: float,
        scope: str,
        metadata: Mapping[str, object] | None = None,
    ) -> Mask:
        """Top ⌊m·p⌋ (global) or ⌊n_t·p⌋ per tensor; override to fix the selection."""
        from ..formats.mask import Mask

        return Mask.from_scores(scores, p, scope, metadata)


def gradient_steps(
    context: ScoringContext,
    loss_weight: Callable[[int], float],
    fresh_gradients: bool,
) -> Iterator[int]:
    """Backward of `loss_weight(batch size) · mean batch loss` for every batch, at θ0.

    Yields each batch's size after its backward, when `.grad` of every eligible tensor
    holds the accumulated (or, with `fresh_gradients`, this batch's) gradient. The
    model is in eval mode (no dropout: the score is a property of θ0, not of a dropout
    draw) and only eligible tensors require gradients, so the head costs no buffer.
    """
    if context.batches is None:
        raise ValueError("this scorer needs data, but the context holds no batches")
    model = context.loaded.model
    eligible = context.loaded.eligible()
    model.eval()
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in eligible)
        parameter.grad = None
    examples = 0
    for done, batch in enumerate(context.batches, start=1):
        if fresh_gradients:
            for parameter in eligible.values():
                parameter.grad = None
        batch = context.send(batch)
        size = int(batch["labels"].shape[0])
        loss = model(**batch).loss  # mean over the batch
        (loss * (loss_weight(size) * context.loss_scale)).backward()
        examples += size
        context.progress("scoring", done, context.num_batches, examples=examples, loss=float(loss.detach()))
        yield size


def eligible_gradients(context: ScoringContext) -> dict[str, torch.Tensor]:
    """This process's `.grad` of every eligible tensor, the loss scale undone (zeros
    where no gradient reached it). Dividing by a power of two is exact; a non-finite
    entry means fp16 overflowed, which no later step could repair."""
    import torch

    gradients = {}
    for name, parameter in context.loaded.eligible().items():
        gradient = parameter.grad.detach() if parameter.grad is not None else torch.zeros_like(parameter)
        if context.loss_scale != 1.0:
            gradient.div_(context.loss_scale)
            if not torch.isfinite(gradient).all():
                raise NumericalError(
                    f"the gradient of {name} overflowed in fp16; score with --precision bf16 (or fp32) instead"
                )
        gradients[name] = gradient
    return gradients


def batch_moments(
    context: ScoringContext, with_mean: bool = True
) -> tuple[dict[str, torch.Tensor] | None, dict[str, torch.Tensor]]:
    """One pass of per-batch gradients (each batch's mean loss on its own: loss weight 1,
    `Scorer.weighs_by_share` False), summed over processes: (Σ_b n_b/N · g_b, the mean
    loss's gradient, or None without `with_mean`; Σ_b n_b/N · g_b², `fisher`'s score).
    Each batch weighs its examples, so a short last batch, the noisiest, counts as them."""
    import torch

    eligible = context.loaded.eligible()
    total = context.num_examples  # over all processes
    means = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in eligible.items()} if with_mean else None
    squares = {name: torch.zeros_like(p, dtype=torch.float32) for name, p in eligible.items()}
    for size in gradient_steps(context, loss_weight=lambda size: 1.0, fresh_gradients=True):
        for name, gradient in eligible_gradients(context).items():  # this batch's mean-loss gradient
            if means is not None:
                means[name].add_(gradient.float(), alpha=size / total)
            squares[name].add_(gradient.float().pow(2), alpha=size / total)
    for parameter in eligible.values():
        parameter.grad = None
    reduced = None if means is None else {name: context.reduce_sum(value) for name, value in means.items()}
    return reduced, {name: context.reduce_sum(value) for name, value in squares.items()}
