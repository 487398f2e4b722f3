"""score -> train -> eval on the real MiniLM and cb: the complete `train --mask` command,
exact sparsity on a real model, and test metrics recorded in run.json."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.formats.mask import Mask
from sparsetune.models import resolve_model

pytestmark = pytest.mark.integration


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_train_from_the_mask_alone_then_eval(shared_data_dir, tmp_path):
    data = ["--data-dir", str(shared_data_dir)]
    mask_path, out = tmp_path / "mask.safetensors", tmp_path / "out"
    invoke(
        "score",
        "--task",
        "cb",
        "-p",
        "0.005",
        "--examples",
        "16",
        "--max-length",
        "64",
        "-o",
        str(mask_path),
        "-q",
        *data,
    )
    # No MODEL, no --task: both come from the mask.
    invoke(
        "train",
        "--mask",
        str(mask_path),
        "-o",
        str(out),
        "--max-steps",
        "3",
        "--batch-size",
        "8",
        "--max-length",
        "64",
        "--eval-every",
        "2",
        "-q",
        *data,
    )
    record = json.loads((out / "run.json").read_text())
    assert (
        record["task"] == "cb" and record["base_model"] == "embedded:all-MiniLM-L6-v2" and record["method"] == "sparse"
    )
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in line] == [
        1,
        2,
        3,
    ]

    mask = Mask.load(mask_path)
    trained = load_file(str(out / "model.safetensors"))
    base = load_file(str(f"{resolve_model(None)}/model.safetensors"))
    moved = 0
    for name in mask.shapes:
        before = base[name.removeprefix("bert.")] if name.removeprefix("bert.") in base else base[name]
        inside = mask.bool_tensor(name)
        assert torch.equal(trained[name][~inside], before[~inside]), name
        moved += int((trained[name][inside] != before[inside]).sum())
    assert moved > 0

    result = invoke("eval", str(out), "--json", *data)
    payload = json.loads(result.stdout)
    assert payload["task"] == "cb" and payload["examples"] == 56
    assert json.loads((out / "run.json").read_text())["metrics"]["validation"] == payload["metrics"]

    refused = CliRunner().invoke(app, ["train", "--mask", str(mask_path), "-o", str(out), *data])
    assert refused.exit_code == 1 and "--force" in refused.stderr


def test_bf16_score_train_eval_on_minilm(shared_data_dir, tmp_path):
    """The fast path end to end on the real model: every stage in bf16 autocast, the
    precision recorded, the files' tensors still float32, exact sparsity kept."""
    data = ["--data-dir", str(shared_data_dir)]
    mask_path, out = tmp_path / "mask.safetensors", tmp_path / "out"
    invoke(
        "score",
        "--task",
        "cb",
        "--examples",
        "16",
        "--max-length",
        "64",
        "--precision",
        "bf16",
        "-o",
        str(mask_path),
        "-q",
        *data,
    )
    mask = Mask.load(mask_path)
    assert mask.metadata["precision"] == "bf16" and mask.selected > 0
    invoke(
        "train",
        "--mask",
        str(mask_path),
        "-o",
        str(out),
        "--max-steps",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "64",
        "--precision",
        "bf16",
        "-q",
        *data,
    )
    record = json.loads((out / "run.json").read_text())
    assert record["hyperparameters"]["precision"] == "bf16" and "device" not in record["hyperparameters"]
    trained = load_file(str(out / "model.safetensors"))
    assert {tensor.dtype for tensor in trained.values() if tensor.is_floating_point()} == {torch.float32}
    base = load_file(str(f"{resolve_model(None)}/model.safetensors"))
    for name in mask.shapes:
        before = base[name.removeprefix("bert.")] if name.removeprefix("bert.") in base else base[name]
        assert torch.equal(trained[name][~mask.bool_tensor(name)], before[~mask.bool_tensor(name)]), name
    payload = json.loads(invoke("eval", str(out), "--json", *data).stdout)
    assert payload["precision"] == "bf16" and payload["examples"] == 56
