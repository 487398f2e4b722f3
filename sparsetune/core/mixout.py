"""Mixout's weight (Lee et al. 2020): W̃ = (M ⊙ W + (1 − M) ⊙ u − p·u) / (1 − p) while
training, W at evaluation; a parametrization (`methods/mixout.py` puts it on the layers)."""

from __future__ import annotations

import torch
from torch import nn


class MixoutToTarget(nn.Module):
    """W -> (M ⊙ W + (1 − M) ⊙ u − p·u) / (1 − p) while training; W at evaluation."""

    def __init__(self, target: torch.Tensor, p: float, per_neuron: bool):
        super().__init__()
        self.register_buffer("target", target.detach().clone(), persistent=False)  # u: [out, in]
        self.p, self.per_neuron = p, per_neuron

    def forward(self, weight: torch.Tensor) -> torch.Tensor:  # [out, in] -> [out, in]
        if not self.training or self.p == 0.0:
            return weight
        shape = weight.shape[-1:] if self.per_neuron else weight.shape  # [in] or [out, in]
        keep = torch.empty(shape, dtype=weight.dtype, device=weight.device).bernoulli_(1.0 - self.p)
        target = self.target
        return (keep * weight + (1.0 - keep) * target - self.p * target) / (1.0 - self.p)
