"""Exact top-k over many tensors at once, without concatenating them (global SAM: the paper's Theorem 3).

    python -c "import torch; from sparsetune.core.topk import top_k_many as t; print(t([torch.rand(5)] * 2, 4))"

Global SAM selection keeps the k largest of m scores spread over ~100 tensors. The
obvious `torch.cat` + `kthvalue` holds a copy of all m scores plus kthvalue's value and
int64 index buffers (~16 bytes per entry: 350 MiB for MiniLM, 2 GiB for roberta-base).
Here a strided sample gives a lower bound just below the k-th largest value, one pass
keeps the positions and values at or above it (about 1.25·k of them), and `kthvalue` on
those finds the exact threshold; the selection is then read off the candidates. Ties at
the threshold go to the earliest positions (tensors in the given order, then flat
position), so the same scores always give the same selection.
"""

from __future__ import annotations

from typing import Sequence

import torch

from ..errors import NumericalError

SAMPLE = 1 << 20  # entries in the strided sample that estimates the bound


def top_k_many(tensors: Sequence[torch.Tensor], k: int) -> list[torch.Tensor]:
    """Sorted flat positions, one long tensor per input on its device, of the k largest entries overall."""
    flats = [t.detach().reshape(-1).to(torch.float32) for t in tensors]  # views for contiguous float32 input
    total = sum(f.numel() for f in flats)
    for flat in flats:
        if bool(flat.sum().isnan()) and bool(torch.isnan(flat).any()):  # a cheap reduction first
            raise NumericalError("scores contain NaN; the gradient pass diverged (try a smaller --max-length or batch)")
    if k <= 0:
        return [torch.empty(0, dtype=torch.long, device=f.device) for f in flats]
    if k >= total:
        return [torch.arange(f.numel(), device=f.device) for f in flats]
    positions, values = candidates(flats, k, total)  # per tensor: sorted positions and their scores
    threshold = torch.kthvalue(torch.cat(values), sum(v.numel() for v in values) - k + 1).values
    ties_left = k - sum(int(torch.count_nonzero(v > threshold)) for v in values)
    chosen = []
    for position, value in zip(positions, values):
        tie = value == threshold
        keep = (value > threshold) | (tie & (tie.cumsum(0) <= ties_left))  # earliest ties first
        ties_left -= min(int(tie.sum()), ties_left)
        chosen.append(position[keep])
    return chosen


def candidates(flats: Sequence[torch.Tensor], k: int, total: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Positions and values of every entry at or above a bound that at least k entries reach.

    The bound is the strided sample's quantile a little below the k-th largest, so about
    1.25·k entries come back; in the rare case fewer than k do, the margin widens.
    """
    stride = max(1, total // SAMPLE)
    sample = torch.cat([f[::stride] for f in flats])  # [≈ total / stride]
    wanted = k * sample.numel() / total
    margin = 1.25
    while True:
        rank = int(wanted * margin) + 16  # the sample's rank-th largest: likely below the k-th overall
        if rank >= sample.numel():
            return [torch.arange(f.numel(), device=f.device) for f in flats], list(flats)
        bound = torch.kthvalue(sample, sample.numel() - rank + 1).values
        positions = [torch.nonzero(f >= bound).flatten() for f in flats]  # sorted
        if sum(p.numel() for p in positions) >= k:
            return positions, [f[p] for f, p in zip(flats, positions)]
        margin *= 4
