"""Offline first: an unreachable hub is one line in seconds, and a cached hub model loads
without it, with the commit it resolved to recorded in the mask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sparsetune.formats.mask import Mask
from sparsetune.models import DEFAULT_MODEL_HUB_ID, resolve_model

pytestmark = pytest.mark.integration

UNREACHABLE = {
    "HF_HUB_OFFLINE": "0",
    "HF_DATASETS_OFFLINE": "0",
    "HF_ENDPOINT": "http://127.0.0.1:9",
}  # refused at once


def sparsetune(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sparsetune", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )


@pytest.mark.parametrize("env", [UNREACHABLE, {"HF_HUB_OFFLINE": "1"}], ids=["unreachable", "HF_HUB_OFFLINE"])
def test_hub_model_offline_is_one_line_in_seconds(tmp_path, shared_data_dir, env):
    started = time.monotonic()
    done = sparsetune(
        "score",
        "bert-base-cased",
        "--task",
        "rte",
        "--data-dir",
        str(shared_data_dir),
        "-o",
        str(tmp_path / "m.safetensors"),
        HF_HUB_CACHE=str(tmp_path / "empty-cache"),
        **env,
    )
    seconds = time.monotonic() - started
    assert done.returncode == 1 and "Traceback" not in done.stderr and "Warning" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot load model 'bert-base-cased'" in lines[0] and "embedded MiniLM" in lines[0], (
        done.stderr
    )
    assert seconds < 30, seconds  # was 59-75 s of retries
    assert not (tmp_path / "m.safetensors").exists()


def test_hub_task_data_offline_is_one_line(tmp_path):
    done = sparsetune(
        "score",
        "--task",
        "cb",
        "-o",
        str(tmp_path / "m.safetensors"),
        HF_DATASETS_CACHE=str(tmp_path / "ds"),
        **UNREACHABLE,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and len(lines) == 1 and "--data-dir" in lines[0] and "unreachable" in lines[0], (
        done.stderr
    )
    assert "unset both" not in lines[0]


def test_cached_hub_model_loads_while_the_hub_is_unreachable_and_records_its_commit(tmp_path, shared_data_dir):
    commit = "1" * 40
    repo = tmp_path / "hub" / f"models--{DEFAULT_MODEL_HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    for item in Path(resolve_model(None)).iterdir():
        if item.is_file():
            (snapshot / item.name).symlink_to(item)
    mask = tmp_path / "m.safetensors"
    done = sparsetune(
        "score",
        DEFAULT_MODEL_HUB_ID,
        "--revision",
        "main",
        "--task",
        "cb",
        "--examples",
        "8",
        "--max-length",
        "32",
        "--data-dir",
        str(shared_data_dir),
        "-o",
        str(mask),
        "-q",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        **UNREACHABLE,
    )
    assert done.returncode == 0, done.stderr
    metadata = Mask.load(mask).metadata
    assert (
        metadata["model"] == DEFAULT_MODEL_HUB_ID
        and metadata["revision"] == "main"
        and metadata["model_commit"] == commit
    )
    run = tmp_path / "run"
    done = sparsetune(
        "train",
        "--mask",
        str(mask),
        "-o",
        str(run),
        "--max-steps",
        "1",
        "--batch-size",
        "4",
        "--max-length",
        "32",
        "--data-dir",
        str(shared_data_dir),
        "-q",
        HF_HUB_CACHE=str(tmp_path / "hub"),
        **UNREACHABLE,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["hyperparameters"]["revision"] == "main" and record["extra"]["model_commit"] == commit
