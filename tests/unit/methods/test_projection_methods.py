"""diffpruning and childpruning on the tiny BERT: the hard-concrete gate, the projection,
the eval-mode model equal to the exported one, log.jsonl's mask changes, the CLI flags and
`inspect log.jsonl --plot`."""

from __future__ import annotations

import json
import math

import pytest
import torch
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.core import hard_concrete
from sparsetune.core.tensors import owner
from sparsetune.formats.mask import Mask
from sparsetune.methods import get_method, projecting
from sparsetune.models import load_model
from sparsetune.stages.inspect import inspect_file
from sparsetune.tasks import get_task

from ..training_support import eligible_base_weights, run, saved_weights

runner = CliRunner()


# -- the hard-concrete gate ----------------------------------------------------------
def test_hard_concrete_is_exactly_zero_or_one_often_and_matches_its_l0_probability():
    torch.manual_seed(0)
    for value in (-2.0, 0.0, 1.5):
        log_alpha = torch.full((200_000,), value)
        z = hard_concrete.sample(log_alpha)
        assert float(z.min()) >= 0.0 and float(z.max()) <= 1.0
        assert 0 < int((z == 0).sum()) and 0 < int((z == 1).sum())  # the stretch-and-clip puts mass on both ends
        empirical = float((z != 0).float().mean())
        assert empirical == pytest.approx(float(hard_concrete.probability_nonzero(log_alpha[:1])), abs=0.005)
    assert torch.equal(hard_concrete.deterministic(torch.tensor([-10.0, 10.0])), torch.tensor([0.0, 1.0]))


def test_hard_concrete_is_differentiable_in_log_alpha():
    log_alpha = torch.zeros(1000, requires_grad=True)
    (hard_concrete.sample(log_alpha).sum() + hard_concrete.probability_nonzero(log_alpha).sum()).backward()
    assert log_alpha.grad is not None and float(log_alpha.grad.abs().sum()) > 0


# -- projection helpers ---------------------------------------------------------------
def test_flat_round_trip_entries_entered_and_changed_support():
    shapes = {"a": (2, 3), "b": (4,)}
    mask = Mask({"a": torch.tensor([1, 5]), "b": torch.tensor([0])}, shapes, {"p": 0.3})
    again = projecting.mask_from_flat(projecting.mask_to_flat(mask), shapes, {})
    assert {k: v.tolist() for k, v in again.indices.items()} == {"a": [1, 5], "b": [0]}
    moved = Mask({"a": torch.tensor([1, 2]), "b": torch.tensor([0])}, shapes, {})
    assert projecting.entries_entered(moved, mask) == 1 and projecting.entries_entered(moved, None) == 3
    before = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    after = {"a": torch.tensor([[0.0, 1.0, 0.0], [0.0, 0.0, -0.0]]), "b": torch.zeros(4)}
    support = projecting.changed_support(after, before, {"p": 0.5})
    assert {k: v.tolist() for k, v in support.indices.items()} == {"a": [1, 5]}  # -0.0 is a change, bit for bit


@pytest.mark.skipif(not torch.cuda.is_available(), reason="the state of a run on a GPU lives there; CI has none")
def test_flat_round_trip_on_cuda():
    """A GPU run restores its best dev state, kept mask included, at the end: the round trip
    failed there with a device mismatch (DiffPruning on wsc, issue 15's grid on an H100)."""
    shapes = {"a": (2, 3), "b": (4,)}
    mask = Mask({"a": torch.tensor([1, 5], device="cuda"), "b": torch.tensor([0], device="cuda")}, shapes, {})
    again = projecting.mask_from_flat(projecting.mask_to_flat(mask), shapes, {})
    assert {k: v.tolist() for k, v in again.indices.items()} == {"a": [1, 5], "b": [0]}
    # --resume on a GPU: the kept set is read from the checkpoint on the CPU, the next projection's is on the GPU
    restored = projecting.mask_from_flat(projecting.mask_to_flat(mask).cpu(), shapes, {})
    moved = Mask({"a": torch.tensor([1, 2], device="cuda"), "b": torch.tensor([0], device="cuda")}, shapes, {})
    assert projecting.entries_entered(moved, restored) == 1


# -- the methods, step by step ----------------------------------------------------------
def _bound(name, tiny_model_dir, **options):
    method = get_method(name)(None, {"p": 0.05, "project_every": 1, **options})
    model = method.bind(load_model(tiny_model_dir, get_task("cb"), seed=0))
    return method, model


def _batch():
    torch.manual_seed(1)
    return {
        "input_ids": torch.randint(5, 60, (4, 12)),
        "attention_mask": torch.ones(4, 12, dtype=torch.long),
        "labels": torch.tensor([0, 1, 2, 0]),
    }


@pytest.mark.parametrize("name", ["childpruning", "diffpruning"])
def test_projection_leaves_at_most_k_entries_moved_and_eval_mode_is_the_export(name, tiny_model_dir):
    method, model = _bound(name, tiny_model_dir)
    theta0 = {n: p.detach().clone() for n, p in load_model(tiny_model_dir, get_task("cb"), seed=0).eligible().items()}
    k = math.floor(sum(t.numel() for t in theta0.values()) * 0.05)
    optimizer = torch.optim.SGD(list(method.trainable().values()), lr=0.5)
    model.train()
    batch = _batch()
    for step in (1, 2):
        loss = model(**batch).loss
        if method.regulariser() is not None:
            loss = loss + method.regulariser()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        info = method.after_step(step)
        assert info["projected"] == 1 and "mask_changed" in info
    model.eval()
    with torch.no_grad():
        evaluated = model(**{k_: v for k_, v in batch.items() if k_ != "labels"}).logits
        effective = {n: getattr(*owner(model, n)).detach().clone() for n in theta0}  # eval mode: projected
    moved = sum(int((effective[n] != theta0[n]).sum()) for n in theta0)
    assert 0 < moved <= k
    exported = method.export()
    assert all(torch.equal(dict(exported.named_parameters())[n], effective[n]) for n in theta0)
    with torch.no_grad():
        assert torch.equal(exported(**{k_: v for k_, v in batch.items() if k_ != "labels"}).logits, evaluated)
    final = method.final_mask()
    assert final.selected == moved and final.metadata["method"] == name


def test_childpruning_resets_every_dropped_entry_to_theta0_bit_for_bit(tiny_model_dir):
    method, model = _bound("childpruning", tiny_model_dir, project_every=2)
    theta0 = {n: p.detach().clone() for n, p in method.parameters_.items()}
    with torch.no_grad():
        for theta in method.parameters_.values():
            theta.add_(torch.randn_like(theta))  # every entry moved: the dense phase
    assert method.after_step(1) is None  # not a projection step
    info = method.after_step(2)
    assert info == {"projected": 1, "mask_changed": 1, "mask_entered": method.budget}
    kept = method.kept
    for name, theta in method.parameters_.items():
        inside = kept.bool_tensor(name)
        assert torch.equal(theta[~inside], theta0[name][~inside]) and bool(
            (theta[inside] != theta0[name][inside]).all()
        )
    assert method.after_step(4)["mask_changed"] == 0  # nothing moved since: the same set


def test_diffpruning_penalty_closes_gates_and_state_holds_the_kept_mask(tiny_model_dir):
    method, model = _bound("diffpruning", tiny_model_dir, project_every=3, l0_weight=1.0)
    optimizer = torch.optim.Adam([t for n, t in method.trainable().items() if n.endswith(".gate")], lr=0.05)
    before = float(method.regulariser().detach())
    for _ in range(5):
        method.regulariser().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert float(method.regulariser().detach()) < before  # the L0 term alone pushes every gate shut
    assert method.no_decay("bert.pooler.dense.weight.gate") and not method.no_decay("bert.pooler.dense.weight.diff")
    with torch.no_grad():
        for gated in method.gates.values():
            gated.diff.normal_()
    assert "projection/kept" not in method.state_dict()
    method.after_step(3)
    state = method.state_dict()
    outside = sum(int((g.diff[~method.kept.bool_tensor(n)] != 0).sum()) for n, g in method.gates.items())
    assert outside == 0 and state["projection/kept"].numel() == method.budget
    fresh, _ = _bound("diffpruning", tiny_model_dir, project_every=3)
    fresh.load_state_dict(state)
    assert torch.equal(projecting.mask_to_flat(fresh.kept), state["projection/kept"])


@pytest.mark.parametrize(
    "options, message",
    [
        ({"p": 0.0}, r"^p must be in \(0, 1\]"),  # Python values: their keys (on the CLI, their flags)
        ({"project_every": 0}, "^project_every must be a positive"),
        ({"p": 1e-9}, "keeps no entry"),
        ({"scope": "layer"}, "scope must be one of"),
    ],
)
def test_bad_projection_options_are_usage_errors(options, message, tiny_model_dir):
    from sparsetune.errors import UsageError

    with pytest.raises(UsageError, match=message):
        _bound("childpruning", tiny_model_dir, **options)


# -- through the loop and the CLI ---------------------------------------------------------
def test_cli_flags_log_and_inspect_plot(tmp_path, tiny_model_dir, tiny_data_dir):
    out = tmp_path / "out"
    args = [
        "train",
        str(tiny_model_dir),
        "--task",
        "cb",
        "--method",
        "childpruning",
        "-p",
        "0.02",
        "--project-every",
        "2",
        "-o",
        str(out),
        "--data-dir",
        str(tiny_data_dir),
        "--max-steps",
        "5",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "0.05",
        "--quiet",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [s["step"] for s in steps] == [1, 2, 3, 4, 5]
    assert [bool(s.get("projected")) for s in steps] == [False, True, False, True, False]
    assert steps[1]["mask_changed"] == 1
    record = json.loads((out / "run.json").read_text())
    assert record["hyperparameters"]["method_options"] == {"p": "0.02", "project_every": "2"}
    assert record["trainable_parameters"]["p"] == 0.02
    trained, theta0 = saved_weights(out), eligible_base_weights(tiny_model_dir)
    moved = sum(int((trained[n] != theta0[n]).sum()) for n in theta0)
    assert 0 < moved <= math.floor(sum(t.numel() for t in theta0.values()) * 0.02)

    summary = inspect_file(out / "log.jsonl", plot=tmp_path / "loss.png")
    assert summary["kind"] == "log" and summary["totals"]["projections"] == 2 and summary["totals"]["mask_changes"] >= 1
    assert summary["metadata"]["method"] == "childpruning"
    assert (tmp_path / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    shown = runner.invoke(app, ["inspect", str(out / "log.jsonl")])
    assert shown.exit_code == 0 and "mask_changes" in shown.stdout

    both = runner.invoke(app, [*args[:-1], "--force", "-O", "p=0.1"])
    assert both.exit_code == 2 and "-p and --method-option p=... both given" in both.stderr
    full = runner.invoke(
        app,
        [
            "train",
            str(tiny_model_dir),
            "--task",
            "cb",
            "--method",
            "full",
            "-p",
            "0.1",
            "-o",
            str(tmp_path / "full"),
            "--data-dir",
            str(tiny_data_dir),
        ],
    )
    assert full.exit_code == 2 and "method 'full' has no option 'p' (its options: none)" in full.stderr


def test_resume_keeps_the_projection_schedule(tmp_path, tiny_model_dir, tiny_data_dir):
    options = (("p", "0.05"), ("project_every", "3"))
    common = dict(method="diffpruning", task="cb", model=str(tiny_model_dir), max_steps=7, method_options=options)
    run(tmp_path / "a", tiny_data_dir, **common)

    def stop_at_4(stage, done, total, **info):
        if stage == "train" and done == 4:
            raise KeyboardInterrupt

    from sparsetune.errors import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        run(tmp_path / "b", tiny_data_dir, progress=stop_at_4, **common)
    run(tmp_path / "b", tiny_data_dir, resume=True, max_steps=7)
    assert (tmp_path / "a" / "log.jsonl").read_text() == (tmp_path / "b" / "log.jsonl").read_text()
    assert (tmp_path / "a" / "mask.safetensors").read_bytes() == (tmp_path / "b" / "mask.safetensors").read_bytes()
