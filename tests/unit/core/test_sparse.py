"""Exactly-sparse training: outside the mask nothing moves, optimizer state is k entries."""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils import parametrize

from sparsetune.core import sparse
from sparsetune.core.tensors import owner
from sparsetune.formats.checkpoint import load_checkpoint
from sparsetune.formats.mask import Mask
from sparsetune.models import load_model
from sparsetune.tasks import get_task

from ..training_support import POOLER, base_weights, random_mask, run, saved_weights, write_mask


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
    assert {p for p in loaded.model.parameters() if p.requires_grad} == set(values.values()) | set(
        loaded.head().values()
    )
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


# -- the fast path (sparse_delta) against the reference parametrization -------------

from sparsetune.core import sparse_delta  # noqa: E402


def _structured_mask(loaded) -> Mask:
    """Entries that exercise every case: duplicate rows and columns, a whole row, the
    padding row of the word embeddings, bias and LayerNorm entries, and tensors with
    no entry at all (every key and attention-output tensor)."""
    generator = torch.Generator().manual_seed(3)
    indices = {}
    for name, parameter in loaded.eligible().items():
        if ".key." in name or "attention.output" in name:
            continue  # empty per tensor: frozen, no parametrization
        shape = tuple(parameter.shape)
        if len(shape) == 2:
            rows, cols = shape
            chosen = {0 * cols + c for c in range(cols)} if "embeddings" not in name else set()  # a whole row
            chosen |= {1 * cols + c for c in range(0, cols, 3)}  # duplicate row 1
            chosen |= {r * cols + 2 for r in range(0, rows, 2)}  # duplicate column 2
            chosen |= set(torch.randint(0, rows * cols, (7,), generator=generator).tolist())
            if "word_embeddings" in name:
                chosen |= {5 * cols + 1, 9 * cols + 4, 0 * cols + 7}  # looked-up rows and the padding row
        else:
            chosen = set(torch.randint(0, shape[0], (5,), generator=generator).tolist())
        indices[name] = torch.tensor(sorted(chosen), dtype=torch.long)
    shapes = {name: tuple(p.shape) for name, p in loaded.eligible().items()}
    return Mask(indices, shapes, {})


def _grads(tiny_model_dir, mask, factory, inputs, autocast=False):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    values = sparse.attach(loaded.model, mask, loaded.eligible(), factory=factory)
    with torch.no_grad():  # move the values off θ0, so a stale write would show
        for value in values.values():
            value.add_(0.01)
    loaded.model.train()
    torch.manual_seed(0)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = loaded.model(**inputs)
    out.loss.backward()
    head = {name: p.grad for name, p in loaded.head().items()}
    return out.logits.detach(), {name: v.grad for name, v in values.items()}, head


def _inputs():
    generator = torch.Generator().manual_seed(5)
    ids = torch.randint(5, 40, (3, 9), generator=generator)
    ids[0, -2:] = 0  # padding tokens
    return {"input_ids": ids, "attention_mask": (ids != 0).long(), "labels": torch.tensor([0, 2, 1])}


@pytest.mark.parametrize("plan", [None, *sparse_delta.PLANS])
@pytest.mark.parametrize("which", ["structured", "random"])
def test_fast_path_gradients_equal_the_reference(tiny_model_dir, plan, which):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = _structured_mask(loaded) if which == "structured" else random_mask(tiny_model_dir, "cb", p=0.1)
    inputs = _inputs()
    logits, reference, head = _grads(tiny_model_dir, mask, sparse.SelectedValues, inputs)
    fast_logits, fast, fast_head = _grads(
        tiny_model_dir, mask, lambda o, i: sparse_delta.SparseDelta(o, i, plan=plan), inputs
    )
    assert torch.equal(logits, fast_logits)  # the forward is θ0 with values in, bit for bit
    assert reference.keys() == fast.keys() == set(mask.indices)
    for name in reference:
        assert fast[name] is not None and fast[name].dtype == torch.float32, name
        scale = reference[name].abs().max().item() or 1.0
        torch.testing.assert_close(fast[name], reference[name], rtol=1e-6, atol=1e-6 * scale, msg=name)
    for name in head:
        torch.testing.assert_close(fast_head[name], head[name], rtol=1e-6, atol=1e-7)


def test_fast_path_is_installed_for_linear_and_embedding_weights_only(tiny_model_dir):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = _structured_mask(loaded)
    sparse.attach(loaded.model, mask, loaded.eligible())
    weights = {name.rpartition(".")[0] for name in sparse.attached(loaded.model) if name.endswith(".weight")}
    for module_name, module in loaded.model.named_modules():
        fast = "forward" in module.__dict__
        assert fast == (module_name in weights and isinstance(module, (torch.nn.Linear, torch.nn.Embedding))), (
            module_name
        )
    assert any("forward" in m.__dict__ for m in loaded.model.modules())
    assert not any(p.requires_grad for n, p in loaded.model.named_parameters() if n.endswith(".original"))
    sparse.materialise(loaded.model)
    assert not any("forward" in m.__dict__ for m in loaded.model.modules())


def test_fast_path_saves_no_dense_weight_gradient_and_only_needed_columns(tiny_model_dir):
    def saved_bytes(factory) -> tuple[int, dict, dict]:
        loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
        eligible = loaded.eligible()
        values = sparse.attach(loaded.model, mask, eligible, factory=factory)
        total = 0

        def pack(tensor):
            nonlocal total
            total += tensor.numel() * tensor.element_size()
            return tensor

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
            loss = loaded.model(**_inputs()).loss
        loss.backward()
        return total, eligible, values

    mask = _structured_mask(load_model(tiny_model_dir, get_task("cb"), seed=1))
    reference, _, _ = saved_bytes(sparse.SelectedValues)
    fast, eligible, values = saved_bytes(lambda o, i: sparse_delta.SparseDelta(o, i, plan="cols"))
    assert all(p.grad is None for p in eligible.values())  # θ0 never gets a gradient
    assert all(v.grad.shape == mask.indices[n].shape for n, v in values.items())
    assert fast < reference  # x[:, C] instead of x, no W_eff copies


def test_bf16_autocast_step_runs_and_keeps_values_fp32(tiny_model_dir):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = _structured_mask(loaded)
    inputs = _inputs()
    _, reference, _ = _grads(tiny_model_dir, mask, sparse.SelectedValues, inputs, autocast=True)
    for plan in (None, *sparse_delta.PLANS):
        _, fast, _ = _grads(
            tiny_model_dir, mask, lambda o, i: sparse_delta.SparseDelta(o, i, plan=plan), inputs, autocast=True
        )
        for name, grad in fast.items():
            assert grad.dtype == torch.float32 and torch.isfinite(grad).all(), name
            # bf16 rounds differently on the two paths; they must still agree closely.
            scale = reference[name].abs().max().item() or 1.0
            assert (grad - reference[name]).abs().max().item() <= 0.05 * scale, (plan, name)


def test_values_written_in_place_only_at_the_mask_and_only_when_changed(tiny_model_dir):
    loaded = load_model(tiny_model_dir, get_task("cb"), seed=1)
    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    theta0 = {name: p.detach().clone() for name, p in loaded.eligible().items()}
    values = sparse.attach(loaded.model, mask, loaded.eligible())
    optimizer = torch.optim.AdamW(list(values.values()), lr=0.1, weight_decay=0.5)
    for _ in range(3):
        loaded.model(**_inputs()).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    loaded.model(**_inputs())  # the last write
    for name, delta in sparse.attached(loaded.model).items():
        module, attribute = owner(loaded.model, name)
        stored = module.parametrizations[attribute].original
        inside = mask.bool_tensor(name)
        assert torch.equal(stored[~inside], theta0[name][~inside]), name
        assert torch.equal(getattr(module, attribute).detach(), delta(stored)), name  # what the forward uses
        if "forward" in module.__dict__ and attribute == "weight":
            assert torch.equal(stored[inside], values[name].detach()), name


def test_method_option_selects_the_reference_path(tiny_model_dir):
    from sparsetune.errors import UsageError
    from sparsetune.methods import get_method

    mask = random_mask(tiny_model_dir, "cb", p=0.1)
    for backward, kind in (("sparse", sparse_delta.SparseDelta), ("reference", sparse.SelectedValues)):
        method = get_method("sparse")(mask, {"backward": backward})
        model = method.bind(load_model(tiny_model_dir, get_task("cb"), seed=1))
        assert {type(p) for p in sparse.attached(model).values()} == {kind}
    with pytest.raises(UsageError, match="backward"):
        get_method("sparse")(mask, {"backward": "dense"}).bind(load_model(tiny_model_dir, get_task("cb"), seed=1))
