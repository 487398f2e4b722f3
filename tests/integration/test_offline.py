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

from sparsetune.formats.delta import Delta
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


def test_a_hub_base_is_reloaded_at_the_commit_it_was_trained_on(tmp_path, tiny_model_dir, tiny_data_dir):
    """diff, apply and eval rebuild the base at the commit score/train resolved, not at the
    branch's newest: here `main` has moved on to a model of another width, which loading
    would reject (or, for a same-shaped update, silently diff against)."""
    from transformers import BertConfig, BertModel

    trained, newest = "a" * 40, "b" * 40
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    for commit in (trained, newest):
        (repo / "snapshots" / commit).mkdir(parents=True)
    for item in tiny_model_dir.iterdir():
        (repo / "snapshots" / trained / item.name).symlink_to(item)
        if item.name not in ("config.json", "model.safetensors"):
            (repo / "snapshots" / newest / item.name).symlink_to(item)
    wider = BertConfig.from_pretrained(tiny_model_dir)
    wider.hidden_size, wider.intermediate_size = 48, 96
    BertModel(wider).save_pretrained(repo / "snapshots" / newest)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(newest)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    small = ("--max-length", "32", "--data-dir", str(tiny_data_dir), "-q")

    def ok(*args: str) -> None:
        done = sparsetune(*args, **env)
        assert done.returncode == 0, (args, done.stderr)

    mask = str(tmp_path / "mask.safetensors")
    ok(
        "score",
        "acme/tiny-bert",
        "--revision",
        trained,
        "--task",
        "cb",
        "--examples",
        "8",
        "-p",
        "0.05",
        "-o",
        mask,
        *small,
    )
    ok("train", "--mask", mask, "-o", str(tmp_path / "sparse"), "--max-steps", "2", "--batch-size", "4", *small)
    ok("diff", str(tmp_path / "sparse"), "-o", str(tmp_path / "sparse.delta"), "-q")
    ok("apply", str(tmp_path / "sparse.delta"), "-o", str(tmp_path / "sparse-applied"), "-q")
    ok("train", "acme/tiny-bert", "--revision", trained, "--method", "lora", "--task", "cb",
       "-o", str(tmp_path / "lora"), "--max-steps", "2", "--batch-size", "4", *small)  # fmt: skip
    ok("eval", str(tmp_path / "lora"), "--data-dir", str(tiny_data_dir), "-q")
    ok("diff", str(tmp_path / "lora"), "-o", str(tmp_path / "lora.delta"), "-q")
    ok("apply", str(tmp_path / "lora.delta"), "-o", str(tmp_path / "lora-applied"), "-q")
    ok("eval", str(tmp_path / "lora-applied"), "--task", "cb", "--data-dir", str(tiny_data_dir), "-q")
    for delta in ("sparse.delta", "lora.delta"):
        assert Delta.load(tmp_path / delta).metadata["base_revision"] == trained
    adapter = json.loads((tmp_path / "lora" / "method" / "adapter_config.json").read_text())
    assert adapter["revision"] == trained  # peft's AutoPeftModel loads the base at this commit

    # eval of a fine-tuned model on the hub (here: in its cache), at a revision or main
    tuned = tmp_path / "hub" / "models--acme--tiny-bert-cb"
    (tuned / "snapshots" / trained).mkdir(parents=True)
    for item in (tmp_path / "sparse-applied").iterdir():
        (tuned / "snapshots" / trained / item.name).symlink_to(item)
    (tuned / "refs").mkdir()
    (tuned / "refs" / "main").write_text(trained)
    local = sparsetune("eval", str(tmp_path / "sparse-applied"), "--task", "cb", "--json", *small[:-1], **env)
    for revision in ((), ("--revision", trained)):
        hub = sparsetune("eval", "acme/tiny-bert-cb", "--task", "cb", *revision, "--json", *small[:-1], **env)
        assert hub.returncode == 0, hub.stderr
        assert json.loads(hub.stdout)["metrics"] == json.loads(local.stdout)["metrics"]

    # diff of a fine-tune on the hub against its base: the same delta, byte for byte, as of the folder
    ok("diff", str(tmp_path / "sparse-applied"), "--base", str(tiny_model_dir), "-o", str(tmp_path / "local.delta"))
    ok("diff", "acme/tiny-bert-cb", "--base", str(tiny_model_dir), "-o", str(tmp_path / "hub.delta"))
    assert (tmp_path / "hub.delta").read_bytes() == (tmp_path / "local.delta").read_bytes()
    no_base = sparsetune("diff", "acme/tiny-bert-cb", "-o", str(tmp_path / "never.delta"), **env)
    assert no_base.returncode == 2 and "pass --base" in no_base.stderr and not (tmp_path / "never.delta").exists()
