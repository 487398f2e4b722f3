"""`sparsetune score`, `mask` and `inspect` end to end on the real MiniLM and the real cb/rte data."""

import json
import math

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.formats.mask import Mask
from sparsetune.formats.scores import Scores
from sparsetune.models import DEFAULT_MODEL_NAME

pytestmark = pytest.mark.integration
runner = CliRunner()
MINILM_ELIGIBLE = 22_565_376  # every tensor of the checkpoint (all-MiniLM-L6-v2) but its pooler, head by default
MINILM_POOLER = 384 * 384 + 384  # bert.pooler.dense: 0.65% of the checkpoint


def invoke(*args):
    result = runner.invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result


def test_score_cb_json_summary_and_train_ready_metadata(shared_data_dir, tmp_path):
    mask_path = tmp_path / "cb.safetensors"
    result = invoke(
        "score",
        "--task",
        "cb",
        "--data-dir",
        shared_data_dir,
        "--examples",
        64,
        "--max-length",
        64,
        "-o",
        mask_path,
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["examples"] == 64 and summary["examples_available"] == 225  # 90% of 250
    assert summary["eligible"] == MINILM_ELIGIBLE and summary["selected"] == math.floor(MINILM_ELIGIBLE * 0.005)
    assert summary["head_tensors"] == [
        "bert.pooler.dense.bias",
        "bert.pooler.dense.weight",
        "classifier.bias",
        "classifier.weight",
    ]
    assert summary["head_parameters"] == 3 * 384 + 3 + MINILM_POOLER and summary["pooler"] == "head"
    assert "pooler" not in summary["share_by_module_type"]  # SAM's mask holds no pooler entry
    mask = Mask.load(mask_path)
    assert mask.metadata["model"] == DEFAULT_MODEL_NAME and mask.metadata["task"] == "cb"
    assert (mask.metadata["method"], mask.metadata["p"], mask.metadata["scope"]) == ("sam", 0.005, "global")
    assert (mask.metadata["examples"], mask.metadata["seed"], mask.metadata["dev_fraction"]) == (64, 42, 0.1)
    assert mask.metadata["pooler"] == "head" and mask.metadata["head"] == summary["head_tensors"]


def test_the_literal_pooler_takes_a_large_share_of_sams_budget(shared_data_dir, tmp_path):
    """Issue 14: with the pooler eligible, SAM's global top-k spends much of p on it (63% on
    cb with every example, README); the default makes it task head, so none."""
    result = invoke(
        "score",
        "--task",
        "cb",
        "--data-dir",
        shared_data_dir,
        "--examples",
        64,
        "--max-length",
        64,
        "--pooler",
        "eligible",
        "-o",
        tmp_path / "literal.safetensors",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["eligible"] == MINILM_ELIGIBLE + MINILM_POOLER and summary["pooler"] == "eligible"
    assert summary["share_by_module_type"]["pooler"] > 0.3


def test_score_rte_then_mask_then_inspect_plot(shared_data_dir, tmp_path):
    mask_path, scores_path = tmp_path / "rte.safetensors", tmp_path / "rte-scores.safetensors"
    result = invoke(
        "score",
        "--task",
        "rte",
        "--data-dir",
        shared_data_dir,
        "--examples",
        64,
        "--max-length",
        64,
        "--batch-size",
        32,
        "-o",
        mask_path,
        "--save-scores",
        scores_path,
    )
    assert "not counted in p, always trained" in result.stdout and "share of the mask by module type" in result.stdout
    assert "examples 64 of 2,241" in result.stdout
    assert Scores.load(scores_path).eligible == MINILM_ELIGIBLE

    wider = tmp_path / "rte-1pc.safetensors"
    invoke("mask", scores_path, "-p", 0.01, "-o", wider)
    one_percent = Mask.load(wider)
    assert one_percent.selected == math.floor(MINILM_ELIGIBLE * 0.01)
    base = Mask.load(mask_path)
    for name, index in base.indices.items():  # the 0.5% mask is nested in the 1% mask
        assert set(index.tolist()) <= set(one_percent.indices[name].tolist())

    png = tmp_path / "rte.png"
    result = invoke("inspect", mask_path, "--plot", png)
    assert "selected fraction" in result.stdout and "L5" in result.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    summary = json.loads(invoke("inspect", scores_path, "--json").stdout)
    assert summary["kind"] == "scores" and summary["table"]["rows"][:2] == ["embeddings", "layer 0"]
    assert summary["totals"]["eligible"] == MINILM_ELIGIBLE
