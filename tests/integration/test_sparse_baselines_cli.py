"""The paper's sparse baselines through the CLI on the real MiniLM and cb: random, magnitude
and bitfit masks (no data pass), and diffpruning/childpruning runs whose result is p-sparse,
whose diff is their mask, and whose log inspect draws."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.formats.delta import Delta
from sparsetune.formats.mask import Mask

pytestmark = pytest.mark.integration


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize("method", ["random", "magnitude", "bitfit"])
def test_data_free_masks_on_minilm(method, tmp_path):
    mask_path = tmp_path / "mask.safetensors"
    p = [] if method == "bitfit" else ["-p", "0.005"]
    summary = json.loads(invoke("score", "--task", "cb", "--method", method, *p, "-o", str(mask_path), "--json").stdout)
    assert summary["examples"] == 0 and summary["eligible"] == 22_565_376  # MiniLM-L6-H384 less its pooler (task head)
    mask = Mask.load(mask_path)
    if method == "bitfit":
        assert all(name.endswith(".bias") for name in mask.indices) and summary["notes"] == []
        assert summary["p"] == pytest.approx(mask.selected / mask.eligible) and 0.0005 < summary["p"] < 0.002
    else:
        assert mask.selected == math.floor(22_565_376 * 0.005)


@pytest.mark.parametrize("method", ["diffpruning", "childpruning"])
def test_projection_methods_on_minilm_and_cb(method, shared_data_dir, tmp_path):
    out = tmp_path / "out"
    invoke(
        "train",
        "--task",
        "cb",
        "--method",
        method,
        "-p",
        "0.005",
        "--project-every",
        "2",
        "-o",
        str(out),
        "--max-steps",
        "4",
        "--max-length",
        "64",
        "--batch-size",
        "8",
        "--eval-every",
        "4",
        "-q",
        "--data-dir",
        str(shared_data_dir),
    )
    steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert [s["step"] for s in steps] == [1, 2, 3, 4] and steps[1]["mask_changed"] == 1
    mask = Mask.load(out / "mask.safetensors")
    assert mask.metadata["method"] == method and 0 < mask.selected <= math.floor(mask.eligible * 0.005)
    invoke("diff", str(out), "-o", str(tmp_path / "delta.safetensors"))
    delta = Delta.load(tmp_path / "delta.safetensors")
    assert delta.changed == mask.selected and set(delta.indices) == set(mask.indices)
    summary = json.loads(
        invoke("inspect", str(out / "log.jsonl"), "--plot", str(tmp_path / "loss.png"), "--json").stdout
    )
    assert summary["totals"]["projections"] == 2 and (tmp_path / "loss.png").stat().st_size > 1000
