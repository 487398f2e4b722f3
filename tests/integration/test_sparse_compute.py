"""The fast sparse path on the real MiniLM: every plan the cost model picks for real shapes
and real masks gives the reference parametrization's gradients (fp32, 1e-6 relative)."""

from __future__ import annotations

import pytest
import torch

from sparsetune.core import sparse, sparse_delta
from sparsetune.formats.mask import Mask
from sparsetune.models import load_model
from sparsetune.tasks import get_task

pytestmark = pytest.mark.integration


def _gradients(mask: Mask, factory, batch) -> tuple[dict[str, torch.Tensor], set[str]]:
    loaded = load_model(None, get_task("cb"), seed=0)
    values = sparse.attach(loaded.model, mask, loaded.eligible(), factory=factory)
    loaded.model.train()
    torch.manual_seed(0)  # the same dropout masks on both sides
    loaded.model(**batch).loss.backward()
    kinds = {
        plan.kind
        for delta in sparse.attached(loaded.model).values()
        for key, plan in getattr(delta, "_plans", {}).items()
        if key[0] == "linear"
    }
    return {name: value.grad for name, value in values.items()}, kinds


@pytest.mark.parametrize("scores", ["random", "magnitude"])
def test_minilm_values_gradients_equal_the_reference(scores):
    eligible = load_model(None, get_task("cb"), seed=0).eligible()
    generator = torch.Generator().manual_seed(0)
    if scores == "random":
        table = {name: torch.rand(p.shape, generator=generator) for name, p in eligible.items()}
    else:  # |θ0|: concentrated on a few rows and columns, like SAM
        table = {name: p.detach().abs() for name, p in eligible.items()}
    mask = Mask.from_scores(table, 0.005)
    ids = torch.randint(1000, 30000, (4, 32), generator=generator)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1, 2, 0])}
    reference, _ = _gradients(mask, sparse.SelectedValues, batch)
    fast, kinds = _gradients(mask, sparse_delta.SparseDelta, batch)
    assert kinds  # the fast path ran
    assert reference.keys() == fast.keys()
    for name in reference:
        scale = reference[name].abs().max().item() or 1.0
        torch.testing.assert_close(fast[name], reference[name], rtol=1e-6, atol=1e-6 * scale, msg=name)
