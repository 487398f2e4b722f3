"""Exactly-sparse training: outside the mask nothing moves, optimizer state is k entries."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from sparsetune import sparse
from sparsetune.formats.checkpoint import load_checkpoint
from sparsetune.formats.mask import Mask
from sparsetune.models import load_model
from sparsetune.tasks import get_task

from .training_support import POOLER, base_weights, random_mask, run, saved_weights, write_mask


def test_attach_keeps_the_forward_and_trains_only_values(tiny_model_dir):
    task = get_task("cb")
    reference = load_model(tiny_model_dir, task, seed=1).model.eval()
    loaded = load_model(tiny_model_dir, task, seed=1)
    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    values = sparse.attach(loaded.model, mask, loaded.eligible())
    loaded.model.eval()
    inputs = {"input_ids": torch.randint(5, 40, (3, 7)), "attention_mask": torch.ones(3, 7, dtype=torch.long)}
    assert torch.equal(reference(**inputs).logits, loaded.model(**inputs).logits)
    trainable = {name for name, p in loaded.model.named_parameters() if p.requires_grad}
    assert {p for p in loaded.model.parameters() if p.requires_grad} == set(values.values()) | set(loaded.head().values())
    assert all(name.endswith(".values") or name in loaded.head() for name in trainable)  # classifier + pooler
    assert sum(v.numel() for v in values.values()) == mask.selected


def test_gradient_reaches_values_only(tiny_model_dir):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    eligible = loaded.eligible()
    values = sparse.attach(loaded.model, mask, eligible)
    out = loaded.model(input_ids=torch.randint(5, 40, (2, 6)), labels=torch.tensor([0, 2]))
    out.loss.backward()
    assert all(p.grad is None for p in eligible.values())  # no dense gradient is kept
    for name, value in values.items():
        assert value.grad is not None and value.grad.shape == mask.indices[name].shape


def test_materialise_gives_a_plain_model_with_values_in_place(tiny_model_dir):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    names = list(dict(loaded.model.named_parameters()))
    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    theta0 = {name: p.detach().clone() for name, p in loaded.eligible().items()}
    values = sparse.attach(loaded.model, mask, loaded.eligible())
    with torch.no_grad():
        for value in values.values():
            value.add_(1.0)
    sparse.materialise(loaded.model)
    assert not any(parametrize.is_parametrized(m) for m in loaded.model.modules())
    params = dict(loaded.model.named_parameters())
    assert sorted(params) == sorted(names)  # re-registration may reorder; names are what matter
    for name, before in theta0.items():
        inside = mask.bool_tensor(name)
        assert torch.equal(params[name][~inside], before[~inside])
        assert torch.equal(params[name][inside], before[inside] + 1.0)


def test_custom_factory_is_the_seam_for_a_faster_backward(tiny_model_dir):
    built = []

    class Recording(sparse.SelectedValues):
        def __init__(self, original, index):
            super().__init__(original, index)
            built.append(index.numel())

    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    sparse.attach(loaded.model, mask, loaded.eligible(), factory=Recording)
    assert sum(built) == mask.selected and set(sparse.attached(loaded.model)) == set(mask.indices)


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory, tiny_model_dir, tiny_data_dir):
    tmp = tmp_path_factory.mktemp("sparse-run")
    mask_path = write_mask(tmp, tiny_model_dir)
    # Large weight decay and lr: any leak onto frozen entries would show.
    record = run(tmp / "out", tiny_data_dir, mask=str(mask_path), weight_decay=0.5, lr=5e-2)
    return tmp / "out", Mask.load(mask_path), record


def test_entries_outside_the_mask_stay_theta0_exactly(sparse_run, tiny_model_dir):
    out, mask, _ = sparse_run
    trained, theta0 = saved_weights(out), base_weights(tiny_model_dir)
    changed = 0
    for name, before in theta0.items():
        if name not in mask.shapes:  # the pooler: task head by default, trained densely beside the mask
            assert name in POOLER and not torch.equal(trained[name], before), name
            continue
        inside = mask.bool_tensor(name)
        assert torch.equal(trained[name][~inside], before[~inside]), name
        changed += int((trained[name][inside] != before[inside]).sum())
    assert changed > mask.selected // 2  # most selected entries moved


def test_optimizer_state_holds_k_plus_head_entries(sparse_run):
    out, mask, record = sparse_run
    checkpoint = load_checkpoint(out)
    moments = [t for per in checkpoint.optimizer["state"].values() for key, t in per.items() if key == "exp_avg"]
    head = record.trainable_parameters["head"]
    assert sum(t.numel() for t in moments) == mask.selected + head
    assert sum(t.numel() for t in checkpoint.model.values()) == mask.selected + head
    assert record.trainable_parameters["pretrained_trainable"] == mask.selected
