"""core.topk: the exact global top-k over many tensors, whatever its sample sees."""

import numpy as np
import pytest
import torch

import sparsetune.core.topk as topk

from ..formats.test_mask import reference_top_k


@pytest.mark.parametrize("sample", [3, 16, 1 << 20])
@pytest.mark.parametrize("seed", range(4))
def test_top_k_many_is_exact_whatever_the_sample(monkeypatch, sample, seed):
    """The strided sample only estimates a bound; the result must be exact even when the
    sample is tiny and misses the largest entries (forcing the widening retry)."""
    monkeypatch.setattr(topk, "SAMPLE", sample)
    generator = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(n, generator=generator) for n in (50, 7, 120, 1)]
    tensors[0][1::2] = 10.0  # large values exactly where a stride-2 sample never looks
    tensors[2][::3] = tensors[2][::3].round()  # ties
    tensors[1][0], tensors[1][1] = float("inf"), -float("inf")
    flat = torch.cat(tensors).numpy()
    offsets = np.cumsum([0] + [t.numel() for t in tensors])
    for k in (1, 5, 25, 60, 177, 178):
        got = topk.top_k_many(tensors, k)
        merged = sorted(int(i) + int(offsets[j]) for j, index in enumerate(got) for i in index)
        assert merged == reference_top_k(flat, k), (k, sample)
        assert all(torch.equal(index, torch.sort(index).values) for index in got)


def test_top_k_many_widens_when_the_sample_overestimates(monkeypatch):
    monkeypatch.setattr(topk, "SAMPLE", 64)
    tensors = [torch.rand(4096, generator=torch.Generator().manual_seed(0)), torch.rand(100)]
    stride = (4096 + 100) // 64
    tensors[0][::stride] += 10.0  # the sample sees only large values; the bound lands too high
    kth = []
    real_kthvalue = torch.kthvalue
    monkeypatch.setattr(topk.torch, "kthvalue", lambda x, k: kth.append(x.numel()) or real_kthvalue(x, k))
    got = topk.top_k_many(tensors, 500)
    flat = torch.cat(tensors).numpy()
    merged = sorted([int(i) for i in got[0]] + [int(i) + 4096 for i in got[1]])
    assert merged == reference_top_k(flat, 500)
    assert len(kth) >= 3  # sample quantile, a widened sample quantile, then the exact threshold


@pytest.mark.skipif(not torch.cuda.is_available(), reason="positions on the scores' device; CI has no GPU")
@pytest.mark.parametrize("k", [0, 3, 10, 12])  # none, the sample's fallback (all candidates), all of them
def test_positions_are_on_the_scores_device(k):
    """DiffPruning projects GPU scores: the fallback paths made CPU positions, which the
    selection then indexed with a GPU mask (a crash at -p ≥ 0.8)."""
    scores = [torch.rand(4, 2, device="cuda"), torch.rand(4, device="cuda")]
    chosen = topk.top_k_many(scores, k)
    assert all(index.device == scores[0].device for index in chosen)
    assert sum(index.numel() for index in chosen) == k
