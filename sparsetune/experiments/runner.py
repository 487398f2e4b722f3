"""Running one grid cell (score if needed, train, evaluate) and the whole grid.

    sparsetune grid experiments/example.toml -o results/example/results.jsonl --jobs 2

`run_one` is what a worker process executes; `run_grid` starts one worker process per
run (at most `jobs` at once), so each run's peak memory is its own and a crash or a
kill costs that run only. A finished run is one appended line; a rerun skips finished
ids and resumes a killed run from its checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import (
    SparsetuneError,
    Terminated,
    TrainingError,
    TrainingInterrupted,
    interruption,
    sigterm_unwinds,
)
from ..progress import ProgressCallback, no_progress
from .grid import GridConfig, RunSpec, spec_from_json, spec_to_json
from .lifeline import PARENT_ENV, die_with_parent, parent_from_env
from .results import RunResult, append_result, finished_ids

WORKER = [sys.executable, "-m", "sparsetune.experiments.worker"]


def _versions() -> dict[str, str]:
    import torch
    import transformers

    from .._version import __version__

    return {
        "sparsetune": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _train_kwargs(spec: RunSpec, mask: Path | None) -> dict[str, Any]:
    from ..config import TrainConfig

    known = {field.name for field in dataclasses.fields(TrainConfig)}
    flags = dict(spec.method.train_flags)
    unknown = sorted(set(flags) - known)
    if unknown:
        raise SparsetuneError(f"grid method {spec.method.name!r}: unknown train flag {unknown[0]!r}")
    kwargs: dict[str, Any] = {
        **flags,
        "output": str(spec.run_dir),
        "model": spec.model,
        "task": spec.task,
        "seed": spec.seed,
        "data_dir": spec.data_dir,
        "method_options": tuple((str(k), str(v)) for k, v in spec.method.options.items()),
    }
    if mask is not None:
        kwargs["mask"] = str(mask)
    else:
        kwargs["method"] = spec.method.train
        if spec.p is not None:  # projection methods take p at training time, as a method option
            kwargs["method_options"] += (("p", repr(spec.p)),)
    if (spec.run_dir / "checkpoint").is_dir():
        kwargs["resume"] = True
    elif spec.run_dir.exists():
        kwargs["force"] = True  # a run killed before its first checkpoint starts over
    return kwargs


def run_one(spec: RunSpec, progress: ProgressCallback = no_progress) -> RunResult:
    """Score (mask methods), train, evaluate on the test split; return the result line."""
    from ..config import EvalConfig, ScoreConfig, TrainConfig
    from ..stages.evaluate import evaluate
    from ..stages.score import score
    from ..stages.train.loop import train

    started = time.time()
    mask = None
    if spec.method.score:
        mask = spec.run_dir.parent / f"{spec.run_dir.name}.mask.safetensors"
        if not mask.is_file():
            score(
                ScoreConfig(
                    **{
                        **spec.method.score_flags,
                        "task": spec.task,
                        "model": spec.model,
                        "p": spec.p,
                        "method": spec.method.score,
                        "seed": spec.seed,
                        "data_dir": spec.data_dir,
                        "output": str(mask),
                        "force": True,
                    }
                ),
                progress,
            )
    scored = time.time()
    record = train(TrainConfig(**_train_kwargs(spec, mask)), progress)
    evaluated = time.time()
    test = evaluate(EvalConfig(target=str(spec.run_dir), split="validation", data_dir=spec.data_dir), progress)
    # Training time summed over the attempts of a resumed run (train keeps it in the
    # checkpoint); scoring and the test evaluation as this attempt spent them.
    seconds = (scored - started) + (record.seconds or evaluated - scored) + (time.time() - evaluated)
    return RunResult(
        run_id=spec.run_id,
        method=spec.method.name,
        task=spec.task,
        seed=spec.seed,
        p=spec.p,
        test=test["metrics"],
        dev=dict(record.best),
        trainable_parameters=dict(record.trainable_parameters),
        seconds=round(seconds, 2),
        peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        config_hash=spec.config_hash,
        run_dir=str(spec.run_dir),
        git_commit=git_commit(),
        versions=_versions(),
    )


def preflight(
    grid: GridConfig, results_path: Path, data_dir: str | None, launcher: str | None, config_path: Path
) -> None:
    """What would fail every run, found before the first: a results file or runs_dir that
    cannot be written, a data dir that is not there, a launcher that is not a command."""
    from ..data import resolve_data_dir
    from ..io import check_writable

    check_writable(results_path, "-o")
    check_writable(grid.runs_dir, f"{config_path}: runs_dir", folder=True)
    resolve_data_dir(data_dir or grid.data_dir)
    check_launcher(launcher or grid.launcher)


def check_launcher(launcher: str | None) -> None:
    """A launcher that is no command line, or names no command here, fails before any run."""
    if not launcher:
        return
    try:
        words = shlex.split(launcher)
    except ValueError as err:
        raise TrainingError(f"the launcher {launcher!r} is not a command line ({err})") from None
    if not words or shutil.which(words[0]) is None:
        raise TrainingError(f"cannot start the launcher {launcher!r}: no such command")


class Workers:
    """The grid's live worker processes, each in a session of its own: a Ctrl-C at the
    terminal, or a `kill` of the grid's process group, reaches the grid alone, which
    passes it on to each worker exactly once (a second signal would stop a training
    step half-way; see stages/train/loop.py) and starts no run after it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.live: set[subprocess.Popen] = set()
        self.stopped = False

    def run(self, command: list[str], stdin: str | None, env: dict[str, str], run_id: str) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of `command`, unless the grid was stopped first."""
        with self.lock:
            if self.stopped:
                raise TrainingInterrupted(f"grid run {run_id} not started: the grid was interrupted")
            process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
                start_new_session=True,
            )
            self.live.add(process)
        try:
            out, err = process.communicate(stdin)
        finally:
            with self.lock:
                self.live.discard(process)
        return process.returncode, out, err

    def stop(self, signum: int) -> None:
        """Pass `signum` on to every live worker; start no new one."""
        with self.lock:
            self.stopped = True
            for process in self.live:
                if process.poll() is None:
                    process.send_signal(signum)


def _run_in_worker(
    spec: RunSpec, threads: int, launcher: str | None = None, workers: Workers | None = None
) -> RunResult:
    """One run in a fresh process: `python -m sparsetune.experiments.worker` with the spec
    on stdin, or, with a launcher, `LAUNCHER -m sparsetune.experiments.worker SPEC_FILE`
    (a launcher's processes share no stdin, so the spec travels as a file). Either dies
    with this process (`lifeline`): a killed grid leaves no orphan training."""
    workers = workers or Workers()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "SPARSETUNE_WORKER_THREADS": str(threads)}
    env.pop(PARENT_ENV, None)  # a launcher's workers have the launcher for parent: the lifeline covers them
    if launcher is None:
        returncode, stdout, stderr = workers.run(
            WORKER, spec_to_json(spec), {**env, PARENT_ENV: str(os.getpid())}, spec.run_id
        )
    else:
        if shutil.which(shlex.split(launcher)[0]) is None:
            raise TrainingError(f"grid run {spec.run_id}: cannot start the launcher {launcher!r} (no such command)")
        spec.run_dir.parent.mkdir(parents=True, exist_ok=True)
        spec_file = spec.run_dir.parent / f"{spec.run_dir.name}.spec.json"
        spec_file.write_text(spec_to_json(spec), encoding="utf-8")
        command = [*shlex.split(launcher), *WORKER[1:], str(spec_file)]
        command = [sys.executable, "-m", "sparsetune.experiments.lifeline", str(os.getpid()), *command]
        returncode, stdout, stderr = workers.run(command, None, env, spec.run_id)
    if returncode != 0:
        last = (stderr.strip().splitlines() or ["(no output)"])[-1]
        raise TrainingError(f"grid run {spec.run_id} failed: {last}")
    try:
        return RunResult(**json.loads(stdout.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        raise TrainingError(f"grid run {spec.run_id}: its worker ended without a result line") from None


class GridOutcome(NamedTuple):
    results: list[RunResult]  # the runs finished now, in the order they finished
    failures: list[str]  # one message per failed run
    not_started: list[str]  # run ids left for a rerun by `start_within`


def run_grid(
    specs: list[RunSpec],
    results_path: str | os.PathLike,
    jobs: int = 1,
    progress: ProgressCallback = no_progress,
    launcher: str | None = None,
    start_within: float | None = None,
) -> GridOutcome:
    """Run every spec not yet in `results_path`.

    `start_within` (seconds from now) stops starting runs after that time and lets the
    started ones finish: on an allocation with a hard time limit (a batch job, a lent
    GPU), a run killed at the limit loses everything since its last checkpoint, and on a
    machine that is not kept, all of it."""
    deadline = None if start_within is None else time.monotonic() + start_within
    done_ids = finished_ids(results_path)
    todo = [spec for spec in specs if spec.run_id not in done_ids]
    threads = max(1, (os.cpu_count() or 1) // max(1, jobs))
    lock = threading.Lock()
    results: list[RunResult] = []
    failures: list[str] = []
    not_started: list[str] = []
    progress("grid", len(specs) - len(todo), len(specs))

    workers = Workers()

    def one(spec: RunSpec) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            with lock:
                not_started.append(spec.run_id)
            return
        try:
            result = _run_in_worker(spec, threads, launcher, workers)
        except SparsetuneError as err:
            with lock:
                failures.append(str(err))
            return
        with lock:
            append_result(results_path, result)
            results.append(result)
            progress("grid", len(specs) - len(todo) + len(results) + len(failures), len(specs), last=spec.run_id)

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        list(pool.map(one, todo))
    except KeyboardInterrupt as interrupt:  # Ctrl-C or SIGTERM: each running worker checkpoints and stops
        workers.stop(signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
        pool.shutdown(wait=True, cancel_futures=True)  # no queued run starts
        raise
    pool.shutdown(wait=True)
    return GridOutcome(results, failures, not_started)


def worker_main() -> int:
    """Entry point of a worker process: a spec on stdin (or in the file named by the first
    argument), the result line on stdout (from the main process of a launch only)."""
    die_with_parent(parent_from_env())  # before anything heavy: the grid may already be gone
    with sigterm_unwinds():  # the grid's SIGTERM (or the parent-death one) unwinds, as in the CLI
        try:
            return _work()
        except KeyboardInterrupt as interrupt:  # outside training (loading, scoring, the test)
            message, code = interruption(interrupt)
            print(f"error: {message}", file=sys.stderr)
            return code


def _work() -> int:
    import torch

    from ..runtime import is_main_process

    torch.set_num_threads(int(os.environ.get("SPARSETUNE_WORKER_THREADS", torch.get_num_threads())))
    text = Path(sys.argv[1]).read_text(encoding="utf-8") if len(sys.argv) > 1 else sys.stdin.read()
    spec = spec_from_json(text)
    try:
        result = run_one(spec)
    except SparsetuneError as err:
        print(f"error: {err}", file=sys.stderr)
        return getattr(err, "exit_code", 1)
    except OSError as err:  # a path the run reads or writes: one line, as the CLI says it
        paths = [str(name) for name in (err.filename, err.filename2) if name is not None]
        print(f"error: {' -> '.join(paths) + ': ' if paths else ''}{err.strerror or err}", file=sys.stderr)
        return 1
    if is_main_process():
        print(json.dumps(dataclasses.asdict(result)))
    return 0
