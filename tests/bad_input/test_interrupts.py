"""Ctrl-C prints one line and exits 130 wherever it lands: while a model loads, during a
score pass, during a grid (where every worker stops with its run and the grid with them);
and a killed grid takes its workers with it."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .support import assert_one_error, assert_unchanged, copy_run, invoke, run, snapshot

LOCK = ".sparsetune.lock"


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt


@pytest.mark.parametrize("command", ["score", "train", "eval", "diff", "apply"])
def test_ctrl_c_while_the_model_loads(command, pipeline, tmp_path, monkeypatch):
    import transformers

    monkeypatch.setattr(transformers.AutoModelForSequenceClassification, "from_pretrained", classmethod(_interrupt))
    args = {
        "score": (
            "score",
            pipeline.model,
            "--task",
            "cb",
            "--data-dir",
            pipeline.data,
            "-o",
            tmp_path / "m.safetensors",
        ),
        "train": ("train", "--mask", pipeline.mask, "-o", tmp_path / "out", "--data-dir", pipeline.data),
        "eval": ("eval", copy_run(pipeline.run, tmp_path / "run"), "--data-dir", pipeline.data),
        "diff": ("diff", pipeline.run, "-o", tmp_path / "d.safetensors"),
        "apply": ("apply", pipeline.delta, "-o", tmp_path / "applied"),
    }[command]
    before = snapshot(tmp_path, pipeline.root)
    run(*args, code=130, mentions=("interrupted",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def test_ctrl_c_during_the_score_pass(pipeline, tmp_path, monkeypatch):
    from sparsetune.scoring import get_scorer

    monkeypatch.setattr(type(get_scorer("sam")), "compute", _interrupt)
    run(
        "score",
        pipeline.model,
        "--task",
        "cb",
        "--data-dir",
        pipeline.data,
        "-o",
        tmp_path / "m.safetensors",
        code=130,
        mentions=("interrupted",),
    )
    assert not (tmp_path / "m.safetensors").exists()


def _long_grid(pipeline, folder: Path, seeds: str = "[1]") -> Path:
    """A grid whose runs train for a long time (they are stopped long before)."""
    config = folder / "grid.toml"
    config.write_text(
        f'model = "{pipeline.model}"\ntasks = ["cb"]\nseeds = {seeds}\nruns_dir = "{folder / "runs"}"\n'
        f'data_dir = "{pipeline.data}"\n[train]\nepochs = 100000\nbatch_size = 1\nmax_length = 16\neval_every = 5\n'
        '[[methods]]\nname = "Full"\ntrain = "full"\n'
    )
    return config


def _start_grid(config: Path, results: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "sparsetune", "grid", str(config), "-o", str(results), "-q"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _worker_pid(run_dir: Path, grid: subprocess.Popen, seconds: float = 240) -> int:
    """The pid in the run's lock file, once the worker trains (its first checkpoint is written)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert grid.poll() is None, f"the grid ended: {grid.communicate()}"
        lock = run_dir / LOCK
        if lock.is_file() and (run_dir / "checkpoint").is_dir():
            text = lock.read_text().strip()
            if text.isdigit():
                return int(text)
        time.sleep(0.1)
    raise AssertionError("the worker never started training")


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as dead)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def test_ctrl_c_during_a_grid(pipeline, tmp_path):
    """SIGINT to the terminal's process group (the grid and its worker): the worker
    checkpoints and stops, the grid says so in one line and exits 130."""
    grid = _start_grid(_long_grid(pipeline, tmp_path), tmp_path / "results.jsonl")
    try:
        _worker_pid(tmp_path / "runs" / "Full" / "cb" / "dense" / "seed1", grid)
        os.killpg(grid.pid, signal.SIGINT)
        _, stderr = grid.communicate(timeout=120)
    finally:
        if grid.poll() is None:
            os.killpg(grid.pid, signal.SIGKILL)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert grid.returncode == 130, stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "interrupted" in lines[0], lines
    assert "Traceback" not in stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_to_the_grid_alone_stops_its_worker_and_every_queued_run(signum, pipeline, tmp_path):
    """`kill PID` of the grid (a scheduler's time limit): the grid unwound and then waited
    for its worker, which never heard of it, and would then have started the next queued
    run. The grid passes the signal on to its worker (which checkpoints), starts nothing
    more, and ends with one line: exit 143 for SIGTERM, 130 for SIGINT."""
    runs = tmp_path / "runs" / "Full" / "cb" / "dense"
    grid = _start_grid(_long_grid(pipeline, tmp_path, seeds="[1, 2]"), tmp_path / "results.jsonl")
    try:
        worker = _worker_pid(runs / "seed1", grid)
        os.kill(grid.pid, signum)
        _, stderr = grid.communicate(timeout=120)
    finally:
        if grid.poll() is None:
            os.killpg(grid.pid, signal.SIGKILL)
    lines = [line for line in stderr.splitlines() if line.strip()]
    word = "terminated (SIGTERM)" if signum == signal.SIGTERM else "interrupted"
    assert grid.returncode == (143 if signum == signal.SIGTERM else 130), stderr
    assert len(lines) == 1 and lines[0].startswith(f"error: grid {word}"), lines
    deadline = time.time() + 60
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(worker) and (runs / "seed1" / "checkpoint").is_dir()  # stopped, resumable
    assert not (runs / "seed2").exists()  # the queued run never started


def test_killing_the_grid_kills_its_worker(pipeline, tmp_path):
    """kill -9 of the grid alone (not its group): its worker gets SIGTERM from the kernel
    (Linux's parent-death signal), checkpoints and exits; the run dir's lock is free again."""
    run_dir = tmp_path / "runs" / "Full" / "cb" / "dense" / "seed1"
    grid = _start_grid(_long_grid(pipeline, tmp_path), tmp_path / "results.jsonl")
    try:
        worker = _worker_pid(run_dir, grid)
        assert worker != grid.pid and _alive(worker)
        os.kill(grid.pid, signal.SIGKILL)
        grid.wait(timeout=30)
        deadline = time.time() + 120
        while _alive(worker) and time.time() < deadline:
            time.sleep(0.2)
        assert not _alive(worker), "the worker outlived the grid"
    finally:
        if grid.poll() is None:
            grid.kill()
        try:
            os.killpg(grid.pid, signal.SIGKILL)  # nothing should be left; never leave a test's process behind
        except ProcessLookupError:
            pass
    if (run_dir / LOCK).exists():  # left by a SIGTERM'd worker only if it could not clean up; then free
        with open(run_dir / LOCK, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert (run_dir / "checkpoint").is_dir()  # resumable


def test_a_grid_rerun_refuses_a_run_dir_still_in_use(pipeline, tmp_path):
    """A run dir that another process still trains (an orphan of an earlier grid, here
    this test holding its lock) is not resumed under it: the run fails with one line
    naming the pid, and the run dir is left alone."""
    config = pipeline.grid_config(tmp_path)
    run_dir = tmp_path / "runs" / "Full" / "cb" / "dense" / "seed1"
    run_dir.parent.mkdir(parents=True)
    copy_run(pipeline.run, run_dir)  # a checkpoint: the grid resumes this run
    handle = open(run_dir / LOCK, "a+")
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    try:
        before = snapshot(run_dir)
        result = invoke("grid", config, "-o", tmp_path / "results.jsonl")
        line = assert_one_error(result, 1, command="grid", mentions=("in use", f"pid {os.getpid()}"))
        assert "1 of 1 runs failed" in line
        assert_unchanged(before, snapshot(run_dir))
    finally:
        handle.close()
    assert not (tmp_path / "results.jsonl").exists() or (tmp_path / "results.jsonl").read_text() == ""


@pytest.mark.parametrize("command", ["grid", "diff"])
def test_sigterm_unwinds_with_one_line_and_exit_143(command, pipeline, tmp_path):
    """`kill PID` (a scheduler, a timeout) killed every command but train without a word
    and without its clean-up. Each command here blocks on a FIFO (grid reading its config
    from one, diff writing its delta into one after loading both models) until the SIGTERM."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = {"grid": ("grid", str(fifo), "--dry-run"), "diff": ("diff", str(pipeline.run), "-o", str(fifo))}[command]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    before = snapshot(tmp_path, pipeline.root)
    process = subprocess.Popen(
        [sys.executable, "-m", "sparsetune", *args, "-q"], env=env, stderr=subprocess.PIPE, text=True
    )
    stderr = _sigterm_once(process, _blocked_on, wait=120)
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert process.returncode == 143, stderr
    assert len(lines) == 1 and lines[0] == "error: terminated (SIGTERM)", lines
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def _sigterm_once(process: subprocess.Popen, ready, wait: float) -> str:
    """SIGTERM to `process` once `ready(pid)` holds (it must not exit before); its stderr.
    The process is killed if it outlives the test."""
    try:
        deadline = time.time() + wait
        while time.time() < deadline and not ready(process.pid):
            assert process.poll() is None, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        return process.communicate(timeout=60)[1]
    finally:
        if process.poll() is None:
            process.kill()


def _blocked_on(pid: int) -> bool:
    """The process waits in the kernel for the other end of a FIFO (Linux's wait channel
    of a FIFO's open)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner"
    except OSError:
        return False


def test_a_grid_worker_unwinds_on_sigterm(tmp_path):
    """A grid passes SIGTERM on to its workers (and the kernel sends it when the grid
    dies). Outside the training loop, which defers it to the step's end, a worker was
    killed outright, leaving a scoring pass's temporary files; it now unwinds as the CLI
    does: one line, exit 143. This worker waits for its spec on stdin."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "sparsetune.experiments.worker"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    stderr = _sigterm_once(worker, lambda pid: _catches(pid, signal.SIGTERM), wait=60)
    assert worker.returncode == 143, stderr
    assert stderr.strip() == "error: terminated (SIGTERM)", stderr


def _catches(pid: int, signum: int) -> bool:
    """The process has a handler for `signum` (Linux: /proc/PID/status, SigCgt)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signum - 1)))
