"""Hard-concrete gates: relaxed Bernoulli masks trained by reparametrisation (Louizos et al. 2018).

    python -c "import torch; from sparsetune.core.hard_concrete import sample; print(sample(torch.zeros(5)))"

DiffPruning (Guo et al. 2021), as the paper describes it, gates
every entry of the diff vector with z ∈ [0, 1] and penalises the expected number of
non-zero gates (a differentiable L0 norm). Louizos et al. stretch a binary concrete
variable s ∈ (0, 1) to (γ, ζ) ⊃ [0, 1] and clip, so z is exactly 0 or 1 with non-zero
probability while staying differentiable in log α in between:

    u ~ U(0, 1),  s = σ((log u − log(1 − u) + log α) / β),  z = min(1, max(0, s·(ζ − γ) + γ))
    P(z ≠ 0) = σ(log α − β·log(−γ/ζ))            (the L0 penalty, summed over entries)
    test time: ẑ = min(1, max(0, σ(log α)·(ζ − γ) + γ))

with the paper's constants β = 2/3, γ = −0.1, ζ = 1.1. All functions are elementwise:
`log_alpha` has any shape and so does the result.
"""

from __future__ import annotations

import math

import torch
from torch import nn

BETA = 2.0 / 3.0  # temperature
GAMMA = -0.1  # stretch: lower end
ZETA = 1.1  # stretch: upper end
_EPS = 1e-6  # keeps log u and log(1 − u) finite


def sample(log_alpha: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One reparametrised draw of z (differentiable in `log_alpha`); uses the torch RNG."""
    # The noise needs no gradient, so it is built in place: log u − log(1 − u) = logit(u).
    noise = torch.rand(log_alpha.shape, generator=generator, dtype=log_alpha.dtype, device=log_alpha.device)
    noise.clamp_(_EPS, 1.0 - _EPS).logit_()
    s = torch.sigmoid((noise + log_alpha) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def deterministic(log_alpha: torch.Tensor) -> torch.Tensor:
    """The test-time gate ẑ: no noise, exactly 0 or 1 once |log α| is large enough."""
    return (torch.sigmoid(log_alpha) * (ZETA - GAMMA) + GAMMA).clamp(0.0, 1.0)


def probability_nonzero(log_alpha: torch.Tensor) -> torch.Tensor:
    """P(z ≠ 0) per entry; its sum is the expected L0 norm of the gates."""
    return torch.sigmoid(log_alpha - BETA * math.log(-GAMMA / ZETA))


class GatedDiff(nn.Module):
    """θ0 + z ⊙ δ for one tensor; holds δ and the scaled logits (both shaped like θ0)."""

    def __init__(self, original: torch.Tensor, init_log_alpha: float, gate_scale: float):
        super().__init__()
        self.gate_scale = gate_scale
        self.diff = nn.Parameter(torch.zeros_like(original))  # δ, shaped like θ0
        self.gate = nn.Parameter(torch.full_like(original, init_log_alpha / gate_scale))  # log α / gate_scale

    def log_alpha(self) -> torch.Tensor:
        return self.gate * self.gate_scale

    def training_value(self, original: torch.Tensor) -> torch.Tensor:
        return original + sample(self.log_alpha()) * self.diff  # a fresh z every forward

    def expected_diff(self) -> torch.Tensor:
        return deterministic(self.log_alpha()) * self.diff  # ẑ ⊙ δ
