"""What the projection methods (diffpruning, childpruning) share: the kept set.

    sparsetune train --method childpruning -p 0.005 --project-every 100 --task cb -o out/

The paper (§3) describes both as alternating optimisation with a projection onto the
feasible set {θ : ‖θ − θ0‖₀ ≤ ⌊m·p⌋}: keep the ⌊m·p⌋ entries whose score (|θ − θ0|, or
|ẑ·δ| for DiffPruning) is largest, put every other entry back to θ0. The top-k is the
mask file's own (`Mask.from_scores`: global or per tensor, ties to the lower position), so
the final mask of a run is an ordinary `mask.safetensors` that `train --mask` can reuse.
The final mask is the support of the exported change (`changed_support`): the kept
entries that actually moved, at most ⌊m·p⌋, so `OUT/mask.safetensors` and
`sparsetune diff OUT` name the same entries.

The support of the last projection decides which entries count as "entered" at the next
one, so it is part of the resumable state (a checkpoint holds it as flat indices). The
parametrization that shows dev evaluation and export the projected model is
`core.projection`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

from ..config import DEFAULT_SCOPE, DEFAULT_SPARSITY, check_scope
from ..errors import UsageError
from ..models import display_name
from .base import TrainingMethod
from .registry import option

if TYPE_CHECKING:
    import torch

    from ..formats.mask import Mask

MASK_STATE = "projection/kept"  # checkpoint key of the current kept set (flat indices)


@dataclass(frozen=True)
class ProjectionOptions:
    p: float = option(DEFAULT_SPARSITY, "fraction of eligible entries the result may change", "-p", "--sparsity")
    project_every: int = option(100, "optimizer steps between projections", "--project-every")
    scope: str = option(
        DEFAULT_SCOPE, "global: one top-k over all eligible entries (Theorem 3); per-tensor: ⌊n·p⌋ in each"
    )

    def check(self, name) -> None:
        from ..formats.mask import check_fraction

        check_fraction(self.p, name("p"))
        every = self.project_every
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise UsageError(f"{name('project_every')} must be a positive number of steps, got {every!r}")
        check_scope(self.scope, name("scope"))


class ProjectingMethod(TrainingMethod):
    """A method whose result is projected onto ⌊m·p⌋ entries around θ0.

    A subclass scores the entries (`_scores`: each shaped like its tensor; the projection
    keeps the largest) and projects in `after_step`; the kept set of the last projection
    and the cached projection of the current state are state here.
    """

    Options = ProjectionOptions
    projects = True
    kept: Mask | None = None
    _eval_mask: Mask | None = None

    def _begin(self) -> None:
        """Check the options, set the budget k = ⌊m·p⌋; no projection yet."""
        o = self.options
        self.eligible_count = sum(p.numel() for p in self.eligible.values())
        self.budget = projection_budget(o.p, self.eligible_count)
        self.kept = None  # the last projection's support
        self._eval_mask = None  # Π of the current state, computed on first use

    def _scores(self) -> dict[str, torch.Tensor]:
        """The score of every entry of every projected tensor (no gradient)."""
        raise NotImplementedError

    def _projected_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every projected tensor, by name."""
        raise NotImplementedError

    def _metadata(self) -> dict[str, Any]:
        return {
            "model": display_name(self.loaded.source),
            "method": self.name,
            "project_every": self.options.project_every,
        }

    def current_projection(self) -> Mask:
        """Π's support for the current state (cached until the next step or state load)."""
        from ..formats.mask import Mask

        if self._eval_mask is None:
            self._eval_mask = Mask.from_scores(self._scores(), self.options.p, self.options.scope, self._metadata())
        return self._eval_mask

    def _keep(self, mask: Mask) -> dict[str, Any]:
        """Make `mask` the kept set; the log fields of the projection that chose it."""
        entered = entries_entered(mask, self.kept)
        self.kept = mask
        return {"projected": 1, "mask_changed": int(entered > 0), "mask_entered": entered}

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = super().state_dict()
        if self.kept is not None:
            state[MASK_STATE] = mask_to_flat(self.kept)
        return state

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        super().load_state_dict(state)
        kept = state.get(MASK_STATE)
        self.kept = None if kept is None else mask_from_flat(kept, self._projected_shapes(), self._metadata())
        self._eval_mask = None

    def final_mask(self) -> Mask | None:
        """The entries the exported model changed (a subset of the last projection, ≤ ⌊m·p⌋)."""
        return getattr(self, "_final", None)

    def summary(self) -> dict[str, Any]:
        """Counts for run.json: `pretrained_trainable`/`fraction` describe the result (at most
        k = ⌊m·p⌋ entries differ from θ0); `optimised` is what AdamW updated while training."""
        head = sum(p.numel() for p in self.head.values())
        eligible = sum(p.numel() for p in self.eligible.values())
        optimised = sum(p.numel() for p in self.trainable().values())
        return {
            "trainable": self.budget + head,
            "head": head,
            "head_tensors": self.head_tensors(),
            "pretrained_trainable": self.budget,
            "eligible": eligible,
            "fraction": self.budget / eligible if eligible else 0.0,
            "optimised": optimised,
            "changed": final.selected if (final := self.final_mask()) is not None else None,
            "p": self.options.p,
            "project_every": self.options.project_every,
        }


# -- the kept set: choosing it, comparing it, checkpointing it -------------------
def projection_budget(p: float, eligible: int) -> int:
    """The budget k = ⌊m·p⌋ (per-tensor: summed); the options' own ranges are checked
    when they are parsed (`ProjectionOptions.check`)."""
    from ..formats.mask import budget

    if budget(eligible, p) < 1:
        raise UsageError(f"-p {p} keeps no entry of {eligible} eligible ones; pass a larger -p")
    return budget(eligible, p)


def entries_entered(new: Mask, old: Mask | None) -> int:
    """How many kept entries of `new` were not kept in `old` (all of them if no `old`)."""
    import torch

    if old is None:
        return new.selected
    entered = 0
    for name, index in new.indices.items():
        before = old.indices.get(name)
        if before is None:
            entered += index.numel()
        else:  # a resumed GPU run: the kept set comes from the checkpoint on the CPU, the new one from the GPU
            entered += int((~torch.isin(index, before.to(index.device))).sum())
    return entered


def changed_support(
    after: Mapping[str, torch.Tensor], before: Mapping[str, torch.Tensor], metadata: Mapping[str, object]
) -> Mask:
    """The entries where `after` differs from `before` bit for bit (as `sparsetune diff` sees it)."""
    from ..core.tensors import differs
    from ..formats.mask import Mask

    return Mask.from_bool({name: differs(after[name], old) for name, old in before.items()}, metadata)


def mask_to_flat(mask: Mask) -> torch.Tensor:
    """All kept positions as one int64 tensor over the eligible tensors in order (for checkpoints)."""
    import torch

    parts, offset = [], 0
    for name, shape in mask.shapes.items():
        if name in mask.indices:
            parts.append(mask.indices[name] + offset)
        offset += math.prod(shape)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def mask_from_flat(flat: torch.Tensor, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, object]) -> Mask:
    """Inverse of `mask_to_flat`."""
    import torch

    from ..formats.mask import Mask

    flat, indices, offset = flat.to(torch.long), {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        # the bounds on flat's device: a state restored on a GPU (the best dev epoch) holds it there
        lo, hi = torch.searchsorted(flat, torch.tensor([offset, offset + n], device=flat.device))
        if hi > lo:
            indices[name] = flat[lo:hi] - offset
        offset += n
    return Mask(indices, dict(shapes), dict(metadata))
