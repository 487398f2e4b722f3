"""score -> train -> eval on the real MiniLM and cb: the complete `train --mask` command,
exact sparsity on a real model, and test metrics recorded in run.json."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sparsetune.formats.mask import Mask
from sparsetune.models import resolve_model

from sparsetune.cli import app

pytestmark = pytest.mark.integration


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_train_from_the_mask_alone_then_eval(shared_data_dir, tmp_path):
    data = ["--data-dir", str(shared_data_dir)]
    mask_path, out = tmp_path / "mask.safetensors", tmp_path / "out"
    invoke("score", "--task", "cb", "-p", "0.005", "--examples", "16", "--max-length", "64", "-o", str(mask_path), "-q", *data)
    # No MODEL, no --task: both come from the mask.
    invoke("train", "--mask", str(mask_path), "-o", str(out), "--max-steps", "3", "--batch-size", "8", "--max-length", "64",
           "--eval-every", "2", "-q", *data)
    record = json.loads((out / "run.json").read_text())
    assert record["task"] == "cb" and record["base_model"] == "embedded:all-MiniLM-L6-v2" and record["method"] == "sparse"
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines() if "loss" in line] == [1, 2, 3]

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
