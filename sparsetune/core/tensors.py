"""Two helpers every core module shares: the module that owns a named parameter, and
bitwise equality of tensors."""

from __future__ import annotations

import torch
from torch import nn

_INTS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def owner(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The module holding parameter `name`, and the attribute name in it."""
    module_name, _, attribute = name.rpartition(".")
    return (model.get_submodule(module_name) if module_name else model), attribute


def bits(tensor: torch.Tensor) -> torch.Tensor:
    """The same bytes reread as integers, same shape: `bits(a) == bits(b)` is bitwise
    equality (NaN equals the same NaN, -0.0 differs from +0.0), which `!=` on floats is not."""
    return tensor.detach().contiguous().view(_INTS[tensor.element_size()])


def differs(after: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """Where `after` differs from `before` bit for bit (boolean, shaped like them)."""
    return bits(after) != bits(before)
