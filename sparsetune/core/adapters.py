"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020): the module, and the two
forward hooks that put it into a BERT-style output block (`methods/adapter.py` decides which
blocks, and which hook)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Bottleneck(nn.Module):
    """a(h) = W_up f(W_down h); zero W_up, so a ≡ 0 at the start."""

    def __init__(self, hidden: int, size: int, activation: str):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        self.activation = activation
        with torch.no_grad():
            nn.init.trunc_normal_(self.down.weight, std=1e-2, a=-2e-2, b=2e-2)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [batch, seq, hidden] -> same
        return self.up(getattr(F, self.activation)(self.down(hidden)))


def after_dropout(adapter: Bottleneck):
    def hook(module, inputs, output):  # output d: [batch, seq, hidden]
        return output + adapter(output)

    return hook


def inside_layernorm(adapter: Bottleneck):
    def hook(module, inputs, output):  # inputs[0] = d + x, output = LN(d + x)
        return F.layer_norm(
            inputs[0] + adapter(output), module.normalized_shape, module.weight, module.bias, module.eps
        )

    return hook
