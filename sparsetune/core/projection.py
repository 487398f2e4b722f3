"""The parametrization of the projection methods (DiffPruning, ChildPruning).

    sparsetune train --method childpruning --task cb -p 0.005 --project-every 50 -o out/

Both alternate optimisation with a projection onto the feasible set
{θ : ‖θ − θ0‖₀ ≤ ⌊m·p⌋} (the kept set is chosen in `methods.projecting`).
`ProjectedTensor` is what they put on every eligible tensor: in train mode it returns the
method's training-time tensor; in eval mode (dev evaluation, export) the projection of
the current state. So model selection compares exactly the p-sparse models that `export`
would write, whether or not a projection step has just happened.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .tensors import owner


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


class Origin(nn.Module):
    """θ0 of one tensor, as a buffer: it follows the model across devices, is never trained."""

    def __init__(self, parameter: torch.Tensor):
        super().__init__()
        self.register_buffer("theta0", parameter.detach().clone(), persistent=False)
