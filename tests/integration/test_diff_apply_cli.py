"""score -> train -> diff -> apply -> eval on the real MiniLM: the applied model is the run, bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.formats.delta import Delta

pytestmark = pytest.mark.integration


def invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_diff_apply_round_trip_on_a_real_sparse_run(shared_data_dir, tmp_path):
    data = ["--data-dir", str(shared_data_dir)]
    mask, run = tmp_path / "mask.safetensors", tmp_path / "out"
    invoke(
        "score", "--task", "rte", "-p", "0.005", "--examples", "16", "--max-length", "64", "-o", str(mask), "-q", *data
    )
    invoke("train", "--mask", str(mask), "--max-steps", "2", "--max-length", "64", "-o", str(run), "-q", *data)

    # diff through a real pipe, as in the README: sparsetune diff out/ > delta.safetensors
    command = [sys.executable, "-c", "from sparsetune.cli import main; main()", "diff", str(run)]
    proc = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    delta_path = tmp_path / "delta.safetensors"
    delta_path.write_bytes(proc.stdout)
    delta = Delta.load(delta_path)
    selected = json.loads((run / "run.json").read_text())["trainable_parameters"]["pretrained_trainable"]
    assert 0 < delta.changed <= selected  # only mask entries can have changed
    assert delta.metadata["base_model"] == "embedded:all-MiniLM-L6-v2" and delta.metadata["task"] == "rte"
    # The head travels dense: the classifier and, head by default, the whole pooler (never index + value).
    assert set(delta.head) == {
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    }
    assert delta.metadata["pooler"] == "head" and not any("pooler" in name for name in delta.indices)
    head_bytes = sum(tensor.numel() * tensor.element_size() for tensor in delta.head.values())
    assert (len(proc.stdout) - head_bytes) / delta.changed < 8.5

    applied = tmp_path / "applied"
    invoke("apply", str(delta_path), "-o", str(applied), "-q")
    tuned, rebuilt = load_file(str(run / "model.safetensors")), load_file(str(applied / "model.safetensors"))
    assert set(tuned) == set(rebuilt)
    for name in tuned:
        assert torch.equal(tuned[name].view(-1).view(torch.uint8), rebuilt[name].view(-1).view(torch.uint8)), name

    # plain transformers loads it, and sparsetune eval gives the run's metrics exactly
    from transformers import AutoModelForSequenceClassification

    assert AutoModelForSequenceClassification.from_pretrained(applied).config.num_labels == 2
    of_run = json.loads(invoke("eval", str(run), "--json", "-q", *data))
    of_applied = json.loads(invoke("eval", str(applied), "--task", "rte", "--max-length", "64", "--json", "-q", *data))
    assert of_run["metrics"] == of_applied["metrics"] and of_run["examples"] == of_applied["examples"]
