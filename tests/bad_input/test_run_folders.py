"""Run folders: a run that stops before its first checkpoint leaves nothing that blocks a
rerun; a finished run resumed keeps its test metrics; a run dir in use by a live process
is refused, naming the pid."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .support import assert_unchanged, copy_run, full_disk, ok, run, snapshot

LOCK = ".sparsetune.lock"


def _train_args(pipeline, out, *extra):
    return (
        "train",
        "--mask",
        pipeline.mask,
        "-o",
        out,
        "--data-dir",
        pipeline.data,
        "--max-steps",
        "2",
        "--eval-every",
        "1",
        "--batch-size",
        "8",
        "--max-length",
        "24",
        *extra,
    )


def test_a_crash_before_the_first_checkpoint_leaves_no_folder(pipeline, tmp_path):
    """The disk fills as the first checkpoint is written: one line, OUT is gone, and the
    same command run again (disk freed) simply works."""
    out = tmp_path / "out"
    limit = pipeline.mask.stat().st_size + 1024  # the mask copy and the log fit, the checkpoint does not
    with full_disk(limit):
        run(*_train_args(pipeline, out), mentions=(str(out),))
    assert not out.exists()
    ok(*_train_args(pipeline, out))
    assert (out / "run.json").is_file() and not (out / LOCK).exists()


def _rows(path: Path, copies: int) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines * copies) + "\n")


def test_a_kill_before_the_first_checkpoint_is_taken_over_by_a_rerun(pipeline, tmp_path):
    """kill -9 after a few steps, before the first checkpoint: the folder it leaves (its
    lock file, log.jsonl, the mask copy) is no run to resume, so --resume says so, and
    rerunning the same command starts it over without --force."""
    import shutil

    data = tmp_path / "data"
    shutil.copytree(pipeline.data, data)
    _rows(data / "cb" / "train.jsonl", 20)  # 720 train rows: the first epoch end is far away
    out = tmp_path / "out"
    args = [
        "train",
        "--mask",
        str(pipeline.mask),
        "-o",
        str(out),
        "--data-dir",
        str(data),
        "--max-steps",
        "40",
        "--batch-size",
        "1",
        "--max-length",
        "16",
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "sparsetune", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and process.poll() is None:
            log = out / "log.jsonl"
            if log.is_file() and log.read_text().count("\n") >= 1:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert (out / LOCK).is_file() and not (out / "checkpoint").exists(), sorted(os.listdir(out))
    run("train", "--resume", "-o", out, "--data-dir", data, code=2, mentions=("nothing to resume", "without --resume"))
    ok(*args[:-1])
    assert (out / "run.json").is_file() and not (out / LOCK).exists()


def test_resuming_a_finished_run_keeps_its_test_metrics(pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    recorded = json.loads((folder / "run.json").read_text())["metrics"]
    assert "validation" in recorded
    ok("train", "--resume", "-o", folder, "--data-dir", pipeline.data)
    after = json.loads((folder / "run.json").read_text())
    assert after["metrics"] == recorded
    assert "test (the official validation split)" in (folder / "README.md").read_text()


def test_resume_drops_a_log_line_torn_by_the_kill(pipeline, tmp_path):
    """A kill mid-write leaves half a line at the end of log.jsonl. Resume kept it (as
    step 0) and wrote the new steps after it, so `inspect` then failed on that line."""
    folder = copy_run(pipeline.run, tmp_path / "run")
    whole = (folder / "log.jsonl").read_text()
    (folder / "log.jsonl").write_text(whole + '{"step": 3, "lo')
    ok("train", "--resume", "-o", folder, "--data-dir", pipeline.data)
    assert (folder / "log.jsonl").read_text() == whole
    ok("inspect", folder / "log.jsonl")


def test_resume_with_a_log_that_is_not_utf8(pipeline, tmp_path):
    """It was a UnicodeDecodeError traceback."""
    folder = copy_run(pipeline.run, tmp_path / "run")
    with open(folder / "log.jsonl", "ab") as log:
        log.write(b'{"step": 1, "loss": "\xff"}\n')
    before = snapshot(tmp_path, pipeline.root)
    run("train", "--resume", "-o", folder, "--data-dir", pipeline.data, mentions=("log.jsonl:", "UTF-8"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def _hold(folder: Path):
    """Hold `folder`'s lock the way a live training process does."""
    handle = open(folder / LOCK, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def test_a_run_dir_in_use_is_refused(pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    handle = _hold(folder)
    try:
        before = snapshot(tmp_path)
        for extra in (("--resume",), ("--force",)):
            args = ("train", "-o", folder, "--data-dir", pipeline.data, *extra)
            if extra == ("--force",):
                args = _train_args(pipeline, folder, "--force")
            run(*args, mentions=("in use", f"pid {os.getpid()}"))
        assert_unchanged(before, snapshot(tmp_path))
    finally:
        handle.close()
    ok("train", "--resume", "-o", folder, "--data-dir", pipeline.data)  # released: the stale file is taken over
    assert not (folder / LOCK).exists()


def test_a_stale_lock_of_a_finished_run_does_not_block(pipeline, tmp_path):
    folder = copy_run(pipeline.run, tmp_path / "run")
    (folder / LOCK).write_text("999999\n")  # its process is long gone
    ok("train", "--resume", "-o", folder, "--data-dir", pipeline.data)
    run(*_train_args(pipeline, folder), mentions=("--force",))  # a finished run is still not replaced silently
