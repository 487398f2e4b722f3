"""Exactly-sparse parameters: only the entries a mask selects exist as trainable tensors.

The paper fine-tunes the top ⌊m·p⌋ entries by SAM score and
nothing else. Try it:

    sparsetune train --mask mask.safetensors -o out/

Why a parametrization, not a gradient mask. The paper's code zeroed gradients after
backward; AdamW's decoupled weight decay (and any optimizer momentum) still moved the
"frozen" entries, and the optimizer kept dense moments for all m entries. Here every
pretrained tensor W with selected flat positions `index` ([k_t]) is frozen
(requires_grad=False) and gets a `torch.nn.utils.parametrize` parametrization whose
only parameter is `values` ([k_t], initialised to W[index]):

    W_eff = W.flatten().index_put(index, values).view(W.shape)

so that
- every entry outside the mask is W itself, bit for bit, at every step, by
  construction (W is never touched; no decay, no drift);
- the optimizer (torch AdamW) sees `values` and the head only: its moments hold k
  (+ head) entries, and weight decay can only touch selected entries;
- `values.grad` ([k_t]) is computed at the selected positions only (the fast path,
  below); W never has a `.grad`;
- accelerate, DDP and `torch.compile` see ordinary `nn.Parameter`s.
Tensors with no selected entry are simply frozen. `materialise` removes the
parametrizations, leaving W_eff in place: a plain transformers model for
`save_pretrained`.

The fast path (the default). The parametrization alone costs a full step: autograd
builds each touched weight's dense gradient and gathers k entries. `attach` therefore
uses `sparse_delta.SparseDelta` by default: the same parametrization (so `module.weight`,
`materialise`, eval, checkpoints and `values` are unchanged), plus a forward/backward of
its own for Linear and Embedding weights that computes ∂L/∂values only at the selected
positions (see `core.sparse_delta`). `factory=SelectedValues` selects the plain
parametrization: the reference the fast path is tested against
(`--method-option backward=reference` on the CLI). Any factory works that builds a
module exposing `index` and `values` and returning the effective tensor; one with an
`install(module, attribute)` method may also replace the owning module's forward.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize

from .sparse_delta import SparseDelta, uninstall
from .tensors import owner

if TYPE_CHECKING:
    from ..formats.mask import Mask


class SelectedValues(nn.Module):
    """Parametrization: the frozen tensor with `values` written at `index`."""

    def __init__(self, original: torch.Tensor, index: torch.Tensor):
        super().__init__()
        # Non-persistent: the mask file is the source of truth for positions.
        self.register_buffer("index", index.to(torch.long), persistent=False)  # [k]
        self.values = nn.Parameter(original.detach().reshape(-1)[self.index].clone())  # [k]

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        # original: frozen θ0, any shape with n entries; out: same shape, θ0 except at index.
        return original.reshape(-1).index_put((self.index,), self.values).view_as(original)


Factory = Callable[[torch.Tensor, torch.Tensor], nn.Module]


def attach(
    model: nn.Module,
    mask: Mask,
    eligible: Mapping[str, nn.Parameter],
    factory: Factory = SparseDelta,
) -> dict[str, nn.Parameter]:
    """Freeze every eligible tensor; parametrize those the mask selects from.

    Returns `{tensor name: values}` in model order: the sparse trainable state. Call
    `mask.validate_against(eligible)` first (names and shapes). A tensor with no
    selected entry is only frozen: autograd then stops below the lowest tensor that has
    one. `factory=SelectedValues` is the reference (dense gradient, then gather).
    """
    values: dict[str, nn.Parameter] = {}
    for name, parameter in eligible.items():
        parameter.requires_grad_(False)
        if name not in mask.indices:
            continue
        module, attribute = owner(model, name)
        parametrization = factory(parameter, mask.indices[name].to(parameter.device))
        # unsafe=True skips parametrize's check, which evaluates the parametrization once: a
        # full copy of every touched tensor at attach time (+166 MiB resident on BERT-base).
        # The effective tensor is θ0's shape and dtype by construction (index_put).
        parametrize.register_parametrization(module, attribute, parametrization, unsafe=True)
        if hasattr(parametrization, "install"):
            parametrization.install(module, attribute)
        values[name] = parametrization.values
    return values


def attached(model: nn.Module) -> dict[str, nn.Module]:
    """`{tensor name: parametrization}` for every sparse tensor of `model`."""
    found = {}
    for module_name, module in model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for attribute, chain in module.parametrizations.items():
            for parametrization in chain:
                if hasattr(parametrization, "values") and hasattr(parametrization, "index"):
                    found[f"{module_name}.{attribute}" if module_name else attribute] = parametrization
    return found


def materialise(model: nn.Module) -> nn.Module:
    """Remove the parametrizations, leaving θ0 with the trained values in: a plain model."""
    for name in attached(model):
        module, attribute = owner(model, name)
        uninstall(module)
        parametrize.remove_parametrizations(module, attribute, leave_parametrized=True)
    return model
