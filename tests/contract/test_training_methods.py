"""Every registered training method, automatically: trains, resumes bitwise, exports a
model `eval` scores, and, if it reports a final mask, is p-sparse around θ0 exactly."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from sparsetune.config import DiffConfig, EvalConfig
from sparsetune.errors import TrainingInterrupted
from sparsetune.formats.mask import Mask
from sparsetune.methods import METHODS
from sparsetune.stages.diff import diff
from sparsetune.stages.evaluate import evaluate
from tests.unit.training_support import (
    POOLER,
    assert_same_weights,
    base_weights,
    eligible_base_weights,
    run,
    saved_weights,
    write_mask,
)

METHOD_NAMES = sorted(METHODS)


def _projects(name) -> bool:
    """Methods with a sparsity budget of their own (-p), projected every --project-every steps."""
    return METHODS[name].projects


def _method_args(name, tmp_path, tiny_model_dir):
    if METHODS[name].needs_mask:
        return {"mask": str(write_mask(tmp_path, tiny_model_dir))}
    args = {"method": name, "task": "cb", "model": str(tiny_model_dir)}
    if _projects(name):  # p = 0.05 as the sparse method's mask; odd steps fall between projections
        args["method_options"] = (("p", "0.05"), ("project_every", "2"))
    return args


def _interrupt_at(step):
    def progress(stage, done, total, **info):
        if stage == "train" and done == step:
            raise KeyboardInterrupt

    return progress


def test_the_registry_has_the_core_methods():
    assert {"sparse", "full"} <= set(METHODS)


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_declares_itself(name):
    """What the CLI, the defaults and the report read from the class (methods/registry.py)."""
    cls = METHODS[name]
    assert cls.title and isinstance(cls.projects, bool) and (cls.default_lr is None or cls.default_lr > 0)
    for setting in dataclasses.fields(cls.Options):
        assert setting.metadata.get("help"), (
            f"{name}: declare setting {setting.name!r} with methods.option(default, help)"
        )
    if cls.projects:
        assert {"p", "project_every"} <= {setting.name for setting in dataclasses.fields(cls.Options)}


def test_train_has_every_declared_flag():
    from typer.testing import CliRunner

    from sparsetune.cli import app
    from sparsetune.methods import method_flags

    shown = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).stdout
    for flag in method_flags():  # raises if two methods declare one setting differently
        assert all(name in shown for name in flag.flags) and flag.help in shown, flag


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_method_trains_resumes_bitwise_and_evaluates(name, tmp_path, tiny_model_dir, tiny_data_dir):
    args = _method_args(name, tmp_path, tiny_model_dir)
    record = run(tmp_path / "straight", tiny_data_dir, max_steps=6, **args)
    assert record.method == name and record.trainable_parameters["trainable"] > 0
    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "resumed", tiny_data_dir, max_steps=6, progress=_interrupt_at(4), **args)
    run(tmp_path / "resumed", tiny_data_dir, resume=True, max_steps=6)
    assert_same_weights(saved_weights(tmp_path / "resumed"), saved_weights(tmp_path / "straight"))
    result = evaluate(EvalConfig(target=str(tmp_path / "straight"), data_dir=str(tiny_data_dir)))
    assert 0.0 <= result["metrics"]["accuracy"] <= 1.0
    assert "validation" in json.loads((tmp_path / "straight" / "run.json").read_text())["metrics"]


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_result_is_sparse_around_theta0_outside_its_final_mask(name, tmp_path, tiny_model_dir, tiny_data_dir):
    args = _method_args(name, tmp_path, tiny_model_dir)
    run(tmp_path / "out", tiny_data_dir, max_steps=4, lr=5e-2, weight_decay=0.5, **args)
    trained, theta0 = saved_weights(tmp_path / "out"), eligible_base_weights(tiny_model_dir)
    mask_file = tmp_path / "out" / "mask.safetensors"
    if not mask_file.exists():  # a dense method: every pretrained tensor may move
        assert any(not torch.equal(trained[n], theta0[n]) for n in theta0)
        return
    mask = Mask.load(mask_file)
    for name_, before in theta0.items():
        inside = mask.bool_tensor(name_)
        assert torch.equal(trained[name_][~inside], before[~inside]), name_
    assert set(load_file(str(tmp_path / "out" / "model.safetensors"))) >= set(theta0)


@pytest.mark.parametrize("name", [n for n in METHOD_NAMES if METHODS[n].needs_mask or _projects(n)])
def test_p_sparse_result_and_diff_has_exactly_the_final_mask(name, tmp_path, tiny_model_dir, tiny_data_dir):
    """Methods whose result is p-sparse: ≤ ⌊m·p⌋ entries differ from θ0 and `diff` of the run
    finds only entries of OUT/mask.safetensors. A projection method's mask is the support
    of its change, so `diff` finds exactly it; a given mask is a permission, and an entry
    may stay put (the [PAD] embedding row is 0 with no gradient), so nearly all of it."""
    args = _method_args(name, tmp_path, tiny_model_dir)
    run(tmp_path / "out", tiny_data_dir, max_steps=5, lr=5e-2, weight_decay=0.5, **args)
    mask = Mask.load(tmp_path / "out" / "mask.safetensors")
    assert 0 < mask.selected <= math.floor(mask.eligible * float(mask.metadata["p"]))
    delta = diff(DiffConfig(run=str(tmp_path / "out"))).delta
    found = 0
    for tensor, index in delta.indices.items():
        assert bool(torch.isin(index.long(), mask.indices[tensor]).all()), tensor  # KeyError: a change outside the mask
        found += index.numel()
    if _projects(name):
        assert found == mask.selected and set(delta.indices) == set(mask.indices)
    else:
        assert found >= 0.95 * mask.selected


HEAD = {"classifier.weight", "classifier.bias", *POOLER}  # the new classifier + BERT's pooler (head by default)


def _bound(name, tmp_path, tiny_model_dir, pooler="head"):
    from sparsetune.models import load_model
    from sparsetune.tasks import get_task

    args = _method_args(name, tmp_path, tiny_model_dir)
    mask = None
    if "mask" in args:
        mask = Mask.load(args["mask"])
        if pooler == "eligible":  # a mask over the literal eligible set, pooler included
            from tests.unit.training_support import random_mask

            mask = random_mask(tiny_model_dir, "cb", pooler="eligible")
    method = METHODS[name](mask, dict(args.get("method_options", ())))
    method.bind(load_model(tiny_model_dir, get_task("cb"), seed=0, pooler=pooler))
    return method


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_every_method_sees_the_same_eligible_set_and_trains_the_whole_head(name, tmp_path, tiny_model_dir):
    """The pooler is task head by default: not eligible for any method, and trained (every
    entry, by the optimizer) by every method; with pooler="eligible" it is eligible again."""
    method = _bound(name, tmp_path, tiny_model_dir)
    assert set(method.head) == HEAD and not HEAD & set(method.eligible)
    for tensor in HEAD:
        # LoRA trains peft's copy of a head module (modules_to_save), the others the tensor itself.
        module, _, leaf = tensor.rpartition(".")
        trained = [
            p for n, p in method.trainable().items() if n.endswith((tensor, f"{module}.modules_to_save.default.{leaf}"))
        ]
        assert len(trained) == 1, f"{name} does not train head tensor {tensor} (whole)"
        assert trained[0].requires_grad and trained[0].shape == method.head[tensor].shape, tensor
    summary = method.summary()
    assert summary["head"] == sum(method.head[t].numel() for t in HEAD) and summary["head_tensors"] == sorted(HEAD)
    assert summary["eligible"] == sum(p.numel() for p in method.eligible.values())
    literal = _bound(name, tmp_path / "literal", tiny_model_dir, pooler="eligible")
    assert set(literal.head) == {"classifier.weight", "classifier.bias"} and set(POOLER) <= set(literal.eligible)
    assert literal.summary()["eligible"] == summary["eligible"] + 32 * 32 + 32


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_the_head_pooler_trains_and_run_json_names_the_head(name, tmp_path, tiny_model_dir, tiny_data_dir):
    run(tmp_path / "out", tiny_data_dir, max_steps=3, lr=5e-2, **_method_args(name, tmp_path, tiny_model_dir))
    trained, theta0 = saved_weights(tmp_path / "out"), base_weights(tiny_model_dir)
    for tensor in POOLER:
        assert not torch.equal(trained[tensor], theta0[tensor]), f"{name} left head tensor {tensor} at θ0"
    record = json.loads((tmp_path / "out" / "run.json").read_text())
    assert record["hyperparameters"]["pooler"] == "head"
    assert record["trainable_parameters"]["head_tensors"] == sorted(HEAD)
    final = tmp_path / "out" / "mask.safetensors"
    if final.exists():  # a mask beside the run says which tensors were head
        mask = Mask.load(final)
        assert not set(POOLER) & set(mask.shapes) and mask.metadata["pooler"] == "head"
        if not METHODS[name].needs_mask:  # projection methods write their own final mask
            assert mask.metadata["head"] == sorted(HEAD)


def _validation_logits(folder, tiny_data_dir) -> torch.Tensor:
    """Logits of the model a run or applied dir defines (rebuilt from method/ if it has one)."""
    from sparsetune.data import load_split, make_loader
    from sparsetune.formats.method_dir import has_method_dir
    from sparsetune.methods.structural import load_method_model
    from sparsetune.models import load_model, load_tokenizer
    from sparsetune.tasks import get_task

    task = get_task("cb")
    model = load_method_model(folder, task) if has_method_dir(folder) else load_model(folder, task).model
    model.eval()
    loader = make_loader(load_split(task, "validation", str(tiny_data_dir)), task, load_tokenizer(folder), 16, 32)
    with torch.no_grad():
        return torch.cat([model(**{k: v for k, v in batch.items() if k != "labels"}).logits for batch in loader])


@pytest.mark.parametrize("name", METHOD_NAMES)
def test_diff_then_apply_rebuilds_a_model_with_identical_predictions(name, tmp_path, tiny_model_dir, tiny_data_dir):
    """`diff` exports what the method trained (changed entries, or a structural method's own
    tensors) and `apply` rebuilds a dir whose logits equal the run's bit for bit."""
    from sparsetune.config import ApplyConfig
    from sparsetune.stages.apply import apply

    run(tmp_path / "out", tiny_data_dir, max_steps=3, lr=5e-2, **_method_args(name, tmp_path, tiny_model_dir))
    diff(DiffConfig(run=str(tmp_path / "out"), output=str(tmp_path / "delta.safetensors")))
    apply(ApplyConfig(deltas=(str(tmp_path / "delta.safetensors"),), output=str(tmp_path / "applied")))
    assert torch.equal(
        _validation_logits(tmp_path / "applied", tiny_data_dir), _validation_logits(tmp_path / "out", tiny_data_dir)
    )
