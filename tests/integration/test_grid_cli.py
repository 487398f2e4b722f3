"""`sparsetune grid` and `sparsetune report` on the real MiniLM and cb: a two-setting sweep
and a dense method, the report with its dev choice, and the report checked against the
runs' run.json by experiments/check_report.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sparsetune.cli import app
from sparsetune.experiments.results import read_results

pytestmark = pytest.mark.integration

CHECK_SCRIPT = Path(__file__).resolve().parents[2] / "experiments" / "check_report.py"
CONFIG = """
tasks = ["cb"]
seeds = [1]
runs_dir = "{runs}"
data_dir = "{data}"
[train]
max_steps = 2
batch_size = 8
max_length = 64
eval_every = 2
[score]
examples = 16
max_length = 64
[[methods]]
name = "SAM@lr=0.0001"
score = "sam"
p = [0.005]
flags = {{ lr = 0.0001 }}
[[methods]]
name = "SAM@lr=0.001"
score = "sam"
p = [0.005]
flags = {{ lr = 0.001 }}
[[methods]]
name = "FullTuning"
train = "full"
"""


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_grid_report_and_check_on_minilm(shared_data_dir, tmp_path):
    config = tmp_path / "grid.toml"
    config.write_text(CONFIG.format(runs=tmp_path / "runs", data=shared_data_dir))
    results = tmp_path / "results.jsonl"
    invoke("grid", str(config), "-o", str(results), "--jobs", "2", "-q")
    runs = {result.run_id: result for result in read_results(results)}
    assert set(runs) == {"SAM@lr=0.0001/cb/p0.005/seed1", "SAM@lr=0.001/cb/p0.005/seed1", "FullTuning/cb/dense/seed1"}
    sam = runs["SAM@lr=0.001/cb/p0.005/seed1"]
    # floor(0.005 x 22,565,376 eligible) + cb's head: classifier and pooler
    assert sam.trainable_parameters["trainable"] == 112_826 + 384 * 3 + 3 + 384 * 384 + 384
    record = json.loads((Path(sam.run_dir) / "run.json").read_text())
    assert record["hyperparameters"]["lr"] == 0.001 and record["base_model"] == "embedded:all-MiniLM-L6-v2"

    summary = json.loads(invoke("report", str(results), "-o", str(tmp_path / "report"), "--json").stdout)
    assert set(summary["chosen_on_dev"]) == {"SAM"}
    assert summary["chosen_on_dev"]["SAM"] in {"lr=0.0001", "lr=0.001"}
    assert "## Hyperparameters chosen on dev" in (tmp_path / "report" / "report.md").read_text()

    check = subprocess.run(
        [sys.executable, str(CHECK_SCRIPT), str(results), str(tmp_path / "report" / "report.md")],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "checked 3 runs, 6 Table 1 cells" in check.stdout
