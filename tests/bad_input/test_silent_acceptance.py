"""Inputs that used to be accepted without a word and gave a wrong or meaningless result:
each is now refused with one line, before anything is written."""

from __future__ import annotations

import json

import pytest
import torch

from .support import ONE_STEP, assert_unchanged, copy_run, ok, read_safetensors, rewrite_safetensors, run, snapshot


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--weight-decay", "-0.01"),
        ("--weight-decay", "inf"),
        ("--eval-every", "0"),
        ("--eval-every", "-5"),
        ("--lr", "inf"),
        ("--lr", "nan"),
        ("--lr", "0"),
        ("--lr", "-1e-4"),
        ("--warmup-ratio", "1"),
        ("--warmup-ratio", "nan"),
        ("--seed", "-1"),
        ("--seed", "4294967296"),  # beyond numpy's seeds (2**64 and more: torch's overflow was a traceback)
        ("--max-steps", "0"),
        ("--epochs", "0"),
    ],
)
def test_train_hyperparameters(flag, value, pipeline, tmp_path):
    before = snapshot(tmp_path, pipeline.root)
    run(
        "train",
        "--mask",
        pipeline.mask,
        "-o",
        tmp_path / "out",
        "--data-dir",
        pipeline.data,
        *ONE_STEP,
        flag,
        value,
        code=2,
        mentions=(flag,),
    )
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize(
    "method, flag, value",
    [
        ("adapter", "--reduction-factor", "nan"),  # int(hidden // nan): a traceback
        ("adapter", "--reduction-factor", "0"),  # 0 was the "use the default" sentinel: accepted
        ("adapter", "--adapter-size", "0"),
        ("adapter", "-O", "adapter_size=0"),
        ("mixout", "--mixout-p", "nan"),  # torch's bernoulli_ refused it mid-step: a traceback
        ("lora", "--lora-alpha", "inf"),
        ("lora", "--lora-alpha", "nan"),  # trained to a NaN loss
    ],
)
def test_method_options_out_of_range(method, flag, value, pipeline, tmp_path):
    before = snapshot(tmp_path, pipeline.root)
    flag_name = "--adapter-size" if flag == "-O" else flag
    run(
        "train",
        pipeline.model,
        "--task",
        "cb",
        "--method",
        method,
        "-o",
        tmp_path / "out",
        "--data-dir",
        pipeline.data,
        *ONE_STEP,
        flag,
        value,
        code=2,
        mentions=(flag_name,),
    )
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize(
    "labels, metric, expected",
    [
        (["pos", "neg", "pos"], "accuracy", "twice"),
        (["pos", "neg"], "pearson_spearman", "for regression tasks"),
        (["a", "b", "c"], "accuracy_f1", "binary"),
    ],
)
def test_custom_task_that_cannot_mean_anything(labels, metric, expected, pipeline, tmp_path):
    spec = {
        "train": str(pipeline.data / "cb" / "train.jsonl"),
        "validation": str(pipeline.data / "cb" / "validation.jsonl"),
        "text": ["premise", "hypothesis"],
        "labels": labels,
        "metric": metric,
    }
    (tmp_path / "task.json").write_text(json.dumps(spec))
    run("tasks", "--task", tmp_path / "task.json", mentions=(expected,))


def test_regression_task_with_a_classification_metric(pipeline, tmp_path):
    spec = {"train": "a.jsonl", "validation": "b.jsonl", "text": "s", "type": "regression", "metric": "matthews"}
    (tmp_path / "task.json").write_text(json.dumps(spec))
    run("tasks", "--task", tmp_path / "task.json", mentions=("for classification tasks",))


@pytest.mark.parametrize("fill", ["zeros", "nan", "inf"])
def test_degenerate_scores_file(fill, pipeline, tmp_path):
    tensors, _ = read_safetensors(pipeline.scores)
    value = {"zeros": 0.0, "nan": float("nan"), "inf": float("inf")}[fill]
    if fill == "zeros":
        changed = {name: torch.zeros_like(tensor) for name, tensor in tensors.items()}
    else:
        name = sorted(tensors)[3]
        changed = {name: torch.full_like(tensors[name], value)}
    bad = rewrite_safetensors(pipeline.scores, tmp_path / "bad.safetensors", tensors=changed)
    expected = "every score is 0" if fill == "zeros" else "NaN or infinite"
    run("mask", bad, "-p", "0.1", "-o", tmp_path / "m.safetensors", mentions=(expected,))
    assert not (tmp_path / "m.safetensors").exists()


@pytest.mark.parametrize("fill", ["zeros", "nan"])
def test_degenerate_scores_from_the_pass(fill, pipeline, tmp_path, monkeypatch):
    """A pass whose gradients are all zero (or NaN) would pick entries by position alone."""
    from sparsetune.scoring import get_scorer

    sam = type(get_scorer("sam"))  # the registered class
    original = sam.compute

    def degenerate(self, context):
        scores = original(self, context)
        return {
            name: torch.zeros_like(value) if fill == "zeros" else torch.full_like(value, float("nan"))
            for name, value in scores.items()
        }

    monkeypatch.setattr(sam, "compute", degenerate)
    run(
        "score",
        pipeline.model,
        "--task",
        "cb",
        "--examples",
        "8",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        "--data-dir",
        pipeline.data,
        "-o",
        tmp_path / "m.safetensors",
        mentions=("every score is 0" if fill == "zeros" else "NaN",),
    )
    assert not (tmp_path / "m.safetensors").exists()


def test_non_numeric_metadata(pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.mask, tmp_path / "bad.safetensors", {"p": '"half a percent"'})
    run("train", "--mask", bad, "-o", tmp_path / "out", "--data-dir", pipeline.data, mentions=("p must be a number",))
    assert not (tmp_path / "out").exists()


def test_apply_merge_on_a_sparse_delta(pipeline, tmp_path):
    run("apply", pipeline.delta, "--merge", "-o", tmp_path / "merged", code=2, mentions=("--merge",))
    assert not (tmp_path / "merged").exists()


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_report_on_an_empty_results_file(content, pipeline, tmp_path):
    (tmp_path / "results.jsonl").write_text(content)
    before = snapshot(tmp_path)
    run("report", tmp_path / "results.jsonl", "-o", tmp_path / "report", mentions=("no finished run",))
    assert_unchanged(before, snapshot(tmp_path))


def test_report_does_not_overwrite_without_force(pipeline, tmp_path):
    report = tmp_path / "report"
    ok("report", pipeline.results, "-o", report, "--data-dir", pipeline.data)
    before = snapshot(tmp_path)
    run("report", pipeline.results, "-o", report, "--data-dir", pipeline.data, mentions=("--force",))
    assert_unchanged(before, snapshot(tmp_path))
    (report / "report.md").write_text("stale")
    ok("report", pipeline.results, "-o", report, "--data-dir", pipeline.data, "--force")
    assert (report / "report.md").read_text().startswith("# sparsetune report")


@pytest.mark.parametrize("command", ["score", "mask", "inspect", "diff", "apply"])
def test_no_overwrite_without_force(command, pipeline, tmp_path):
    existing = tmp_path / (
        "existing" if command == "apply" else "existing.png" if command == "inspect" else "existing.safetensors"
    )
    existing.mkdir() if command == "apply" else existing.write_text("precious")
    args = {
        "score": ("score", pipeline.model, "--task", "cb", "--data-dir", pipeline.data, "-o", existing),
        "mask": ("mask", pipeline.scores, "-p", "0.1", "-o", existing),
        "inspect": ("inspect", pipeline.mask, "--plot", existing),
        "diff": ("diff", pipeline.run, "-o", existing),
        "apply": ("apply", pipeline.delta, "-o", existing),
    }[command]
    before = snapshot(tmp_path)
    run(*args, mentions=("--force", str(existing)))
    assert_unchanged(before, snapshot(tmp_path))


def test_train_does_not_overwrite_a_run(pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    before = snapshot(tmp_path)
    run(
        "train",
        "--mask",
        pipeline.mask,
        "-o",
        folder,
        "--data-dir",
        pipeline.data,
        *ONE_STEP,
        mentions=("--force", "--resume"),
    )
    assert_unchanged(before, snapshot(tmp_path))


def test_mask_for_a_task_that_no_longer_resolves(pipeline, tmp_path):
    bad = rewrite_safetensors(pipeline.mask, tmp_path / "bad.safetensors", {"task": "/gone/task.json"})
    run(
        "train",
        "--mask",
        bad,
        "-o",
        tmp_path / "out",
        "--data-dir",
        pipeline.data,
        *ONE_STEP,
        mentions=("--task", str(bad)),
    )
    assert not (tmp_path / "out").exists()
