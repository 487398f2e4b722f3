"""Projection onto the p-sparse set around θ0, shared by the projection-based methods.

    sparsetune train --method childpruning --task cb -p 0.005 --project-every 50 -o out/

Fu et al. 2023 (arXiv 2211.15583) describe DiffPruning and ChildPruning as alternating
optimisation with a projection onto the feasible set {θ : ‖θ − θ0‖₀ ≤ ⌊m·p⌋}: keep the
⌊m·p⌋ entries whose score (|θ − θ0|, or |ẑ·δ| for DiffPruning) is largest, put every
other entry back to θ0. The top-k is the mask file's own (`Mask.from_scores`: global or
per tensor, ties to the lower position), so the final mask of a run is an ordinary
`mask.safetensors` that `train --mask` can reuse.

The final mask of a run is the support of the exported change (`changed_support`): the
kept entries that actually moved, at most ⌊m·p⌋, so `OUT/mask.safetensors` and
`sparsetune diff OUT` name the same entries.

`ProjectedTensor` is the parametrization both methods put on every eligible tensor: in
train mode it returns the method's training-time tensor; in eval mode (dev evaluation,
export) the projection of the current state. So model selection compares exactly the
p-sparse models that `export` would write, whether or not a projection step has just
happened.
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import UsageError
from ..formats.mask import SCOPES, Mask, check_fraction


def check_projection_options(p: float, project_every: int, scope: str, eligible: int) -> int:
    """The budget k = ⌊m·p⌋ (per-tensor: summed), after checking the flags by name."""
    check_fraction(p, "-p")
    if isinstance(project_every, bool) or not isinstance(project_every, int) or project_every < 1:
        raise UsageError(f"--project-every must be a positive number of steps, got {project_every!r}")
    if scope not in SCOPES:
        raise UsageError(f"--method-option scope must be one of {', '.join(SCOPES)}, got {scope!r}")
    if math.floor(eligible * p) < 1:
        raise UsageError(f"-p {p} keeps no entry of {eligible} eligible ones; pass a larger -p")
    return math.floor(eligible * p)


def project(scores: Mapping[str, torch.Tensor], p: float, scope: str, metadata: Mapping[str, object] | None = None) -> Mask:
    """The feasible set: the top ⌊m·p⌋ entries of `scores` (each shaped like its tensor)."""
    return Mask.from_scores(scores, p, scope, metadata)


def keep_tensors(mask: Mask) -> dict[str, torch.Tensor]:
    """Dense boolean tensors (True = kept), one per tensor of the mask, shaped like it."""
    return {name: mask.bool_tensor(name) for name in mask.shapes}


def entries_entered(new: Mask, old: Mask | None) -> int:
    """How many kept entries of `new` were not kept in `old` (all of them if no `old`)."""
    if old is None:
        return new.selected
    entered = 0
    for name, index in new.indices.items():
        before = old.indices.get(name)
        entered += index.numel() if before is None else int((~torch.isin(index, before)).sum())
    return entered


def changed_support(
    after: Mapping[str, torch.Tensor], before: Mapping[str, torch.Tensor], metadata: Mapping[str, object]
) -> Mask:
    """The entries where `after` differs from `before` bit for bit (as `sparsetune diff` sees it)."""
    ints = {2: torch.int16, 4: torch.int32, 8: torch.int64}
    changed = {}
    for name, old in before.items():
        new = after[name].detach()
        changed[name] = new.contiguous().view(ints[new.element_size()]) != old.detach().contiguous().view(ints[old.element_size()])
    return Mask.from_bool(changed, metadata)


def mask_to_flat(mask: Mask) -> torch.Tensor:
    """All kept positions as one int64 tensor over the eligible tensors in order (for checkpoints)."""
    parts, offset = [], 0
    for name, shape in mask.shapes.items():
        if name in mask.indices:
            parts.append(mask.indices[name] + offset)
        offset += math.prod(shape)
    return torch.cat(parts) if parts else torch.empty(0, dtype=torch.long)


def mask_from_flat(flat: torch.Tensor, shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, object]) -> Mask:
    """Inverse of `mask_to_flat`."""
    flat, indices, offset = flat.to(torch.long), {}, 0
    for name, shape in shapes.items():
        n = math.prod(shape)
        lo, hi = torch.searchsorted(flat, torch.tensor([offset, offset + n]))
        if hi > lo:
            indices[name] = flat[lo:hi] - offset
        offset += n
    return Mask(indices, dict(shapes), dict(metadata))


class ProjectedTensor(nn.Module):
    """Parametrization: `train_value(original)` in train mode, `eval_value(original)` in eval mode.

    `holds` (a module with the method's per-tensor state: θ0, δ, gates) becomes a
    submodule, so moving the model to a device moves that state with it.
    """

    def __init__(
        self,
        train_value: Callable[[torch.Tensor], torch.Tensor],
        eval_value: Callable[[torch.Tensor], torch.Tensor],
        holds: nn.Module | None = None,
    ):
        super().__init__()
        self.train_value, self.eval_value = train_value, eval_value
        if holds is not None:
            self.holds = holds

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        return self.train_value(original) if self.training else self.eval_value(original)


def owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module holding parameter `name`, and the attribute name in it."""
    module_name, _, attribute = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attribute


def attach(model: nn.Module, name: str, parametrization: nn.Module) -> nn.Parameter:
    """Register `parametrization` on tensor `name`; returns the original (now `...original`)."""
    module, attribute = owner(model, name)
    parametrize.register_parametrization(module, attribute, parametrization, unsafe=True)
    return module.parametrizations[attribute].original


def materialise(model: nn.Module, names: list[str]) -> nn.Module:
    """Remove the parametrizations of `names` in eval mode, leaving the projected tensors."""
    model.eval()
    for name in names:
        module, attribute = owner(model, name)
        parametrize.remove_parametrizations(module, attribute, leave_parametrized=True)
    return model
