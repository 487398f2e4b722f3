"""core.tensors: the owning module of a parameter, and bitwise comparison."""

import torch
from torch import nn

from sparsetune.core.tensors import bits, differs, owner


def test_owner_is_the_module_and_the_attribute():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sequential(nn.Linear(3, 1)))
    assert owner(model, "1.0.weight") == (model[1][0], "weight")
    assert owner(model[0], "bias") == (model[0], "bias")


def test_differs_is_bitwise_not_numeric():
    before = torch.tensor([0.0, 1.0, float("nan"), 2.0])
    after = torch.tensor([-0.0, 1.0, float("nan"), 2.0 + 2.0**-22])
    assert differs(after, before).tolist() == [True, False, False, True]  # -0.0 is another value; the same NaN is not
    assert bits(before).dtype == torch.int32 and bits(before).shape == before.shape


def test_differs_keeps_the_shape_for_every_width():
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.uint8):
        before = torch.zeros(2, 3, dtype=dtype)
        after = before.clone()
        after[1, 2] = 1
        assert differs(after, before).nonzero().tolist() == [[1, 2]], dtype
