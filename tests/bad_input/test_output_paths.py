"""Outputs that cannot be written: a read-only folder, a path under a regular file, a full
disk, a device. Every command that writes, each fault: one line naming the path, exit 1,
nothing new or half-written anywhere, the inputs untouched, and a device never replaced."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from .support import (
    ONE_STEP,
    assert_unchanged,
    copy_run,
    devices_untouchable,
    full_disk,
    invoke,
    read_only,
    run,
    snapshot,
)

DATA = lambda p: ("--data-dir", p.data)  # noqa: E731

# command -> (args for an output at TARGET, whether the output is a folder)
WRITERS = {
    "score": (
        lambda p, target: (
            "score",
            p.model,
            "--task",
            "cb",
            "-p",
            "0.05",
            "--examples",
            "8",
            "--batch-size",
            "8",
            "--max-length",
            "24",
            "-o",
            target,
            *DATA(p),
        ),
        False,
    ),
    "score --save-scores": (
        lambda p, target: (
            "score",
            p.model,
            "--task",
            "cb",
            "-p",
            "0.05",
            "--examples",
            "8",
            "--batch-size",
            "8",
            "--max-length",
            "24",
            "--save-scores",
            target,
            "-o",
            p.scratch / "never-written.safetensors",
            *DATA(p),
        ),
        False,
    ),
    "mask": (lambda p, target: ("mask", p.scores, "-p", "0.1", "-o", target), False),
    "inspect --plot": (lambda p, target: ("inspect", p.mask, "--plot", target), False),
    "train": (
        lambda p, target: (
            "train",
            "--mask",
            p.mask,
            "-o",
            target,
            *ONE_STEP,
            *DATA(p),
        ),
        True,
    ),
    "diff": (lambda p, target: ("diff", p.run, "-o", target), False),
    "apply": (lambda p, target: ("apply", p.delta, "-o", target), True),
    "report": (lambda p, target: ("report", p.results, "-o", target, *DATA(p)), True),
}
SUFFIX = {"inspect --plot": ".png"}


def _target(writer: str, base: Path) -> Path:
    folder = WRITERS[writer][1]
    return base / ("out" if folder else f"out{SUFFIX.get(writer, '.safetensors')}")


@pytest.fixture()
def pipeline(pipeline, tmp_path):
    """The session pipeline, with a scratch folder for outputs a failing command never reaches."""
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class WithScratch(type(pipeline)):
        scratch: Path = tmp_path / "scratch"

    (tmp_path / "scratch").mkdir()
    return WithScratch(**pipeline.__dict__)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_read_only_folder(writer, pipeline, tmp_path):
    with read_only(tmp_path / "ro") as folder:
        target = _target(writer, folder)
        before = snapshot(tmp_path, pipeline.root)
        line = run(*WRITERS[writer][0](pipeline, target), mentions=(str(target),))
        assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    assert "permission denied" in line or "read-only" in line


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_path_under_a_regular_file(writer, pipeline, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = _target(writer, blocker / "deeper")
    before = snapshot(tmp_path, pipeline.root)
    run(*WRITERS[writer][0](pipeline, target), mentions=(str(target), f"{blocker} is a file"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_full_disk(writer, pipeline, tmp_path):
    """Every write past 200 bytes fails (EFBIG) as on a full disk: the command stops with
    one line and leaves no partial output: not a temporary, not an empty run dir."""
    target = _target(writer, tmp_path)
    before = snapshot(tmp_path, pipeline.root)
    with full_disk(200):
        result = invoke(*WRITERS[writer][0](pipeline, target))
    from .support import assert_one_error

    assert_one_error(result, 1, command=WRITERS[writer][0](pipeline, target)[0], mentions=(str(target),))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_a_device_is_written_through_never_replaced(writer, force, pipeline, tmp_path, monkeypatch):
    """`-o /dev/full`: a file output is written to the device (which refuses: one line,
    no space left); a folder output is refused. With --force too, and /dev/full is still
    the device afterwards (a rename onto it as root would have replaced it)."""
    if not Path("/dev/full").exists():
        pytest.fail("/dev/full is missing on this machine")
    args = [*WRITERS[writer][0](pipeline, Path("/dev/full"))]
    if force:
        args.append("--force")
    before = snapshot(tmp_path, pipeline.root)
    with devices_untouchable(monkeypatch):
        line = run(*args, mentions=("/dev/full",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    if not WRITERS[writer][1]:
        assert "no space left on device" in line


@pytest.mark.parametrize("fault", ["read-only", "full disk"])
def test_eval_cannot_record_its_metrics(fault, pipeline, tmp_path):
    """eval records the test metrics in run.json: a run dir that cannot take them fails
    with one line, and run.json is left as it was."""
    run_dir = copy_run(pipeline.run, tmp_path / "run")
    before = snapshot(tmp_path, pipeline.root)
    args = ("eval", run_dir, "--data-dir", pipeline.data)
    if fault == "read-only":
        with read_only(run_dir):
            run(*args, mentions=(str(run_dir / "run.json"),))
    else:
        with full_disk(200):
            run(*args, mentions=(str(run_dir / "run.json"),))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("fault", ["read-only", "under a file"])
def test_grid_checks_its_results_file_before_running(fault, pipeline, tmp_path):
    config = pipeline.grid_config(tmp_path)
    if fault == "read-only":
        with read_only(tmp_path / "ro") as folder:
            before = snapshot(tmp_path, pipeline.root)
            run("grid", config, "-o", folder / "results.jsonl", mentions=(str(folder / "results.jsonl"),))
            assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    else:
        (tmp_path / "a-file").write_text("x")
        before = snapshot(tmp_path, pipeline.root)
        run("grid", config, "-o", tmp_path / "a-file" / "results.jsonl", mentions=("a-file is a file",))
        assert_unchanged(before, snapshot(tmp_path, pipeline.root))
    assert not (tmp_path / "runs").exists()  # nothing ran


def test_grid_results_on_a_full_device(pipeline, tmp_path, monkeypatch):
    """The run trains, the results line cannot be appended: one line, exit 1; the run dir
    is complete, so the rerun only evaluates and appends."""
    config = pipeline.grid_config(tmp_path)
    with devices_untouchable(monkeypatch):
        run("grid", config, "-o", "/dev/full", mentions=("/dev/full", "no space left on device"))
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert (tmp_path / "runs" / "Full" / "cb" / "dense" / "seed1" / "run.json").is_file()


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_an_empty_output_path(writer, pipeline, tmp_path, monkeypatch):
    """`-o ""` was taken for no output: score and mask said "wrote " and wrote nothing,
    inspect said " already exists", and report (a `Path` option, which click turns from
    `""` into `.`) wrote into the current folder. An empty path is a usage error naming
    the flag."""
    monkeypatch.chdir(tmp_path)
    args = WRITERS[writer][0](pipeline, "")
    before = snapshot(tmp_path, pipeline.root)
    flag = {"score --save-scores": "--save-scores", "inspect --plot": "--plot"}.get(writer, "-o")
    run(*args, code=2, mentions=("empty path", flag))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize(
    "args, name",
    [
        (lambda p: ("report", "", "-o", p.scratch / "report"), "RESULTS"),
        (lambda p: ("grid", "", "--dry-run"), "CONFIG"),
        (lambda p: ("grid", p.grid_config(p.scratch), "-o", "", "--dry-run"), "-o"),
        (lambda p: ("diff", "", "-o", p.scratch / "delta.safetensors"), "RUN"),
        (lambda p: ("apply", "", "-o", p.scratch / "applied"), "DELTA"),
        (lambda p: ("completions", "--write", ""), "--write"),
    ],
    ids=["report", "grid", "grid -o", "diff", "apply", "completions --write"],
)
def test_an_empty_path_argument(args, name, pipeline, tmp_path, monkeypatch):
    """An empty path argument was read as `.`, the current folder ("cannot read grid
    config .: Is a directory", ". is not a model dir"; completions wrote its scripts
    there): it is a usage error naming it."""
    monkeypatch.chdir(tmp_path)
    command = args(pipeline)
    before = snapshot(tmp_path, pipeline.root)
    run(*command, code=2, mentions=("empty path", name))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("spelling", [".", "..", "absolute"])
@pytest.mark.parametrize("writer", ["train", "apply"])
def test_force_never_replaces_the_current_folder(writer, spelling, pipeline, tmp_path, monkeypatch):
    """`apply delta -o . --force` deleted everything in the current folder, then failed
    (a folder cannot be renamed onto itself); `train -o . --force` emptied it."""
    here = tmp_path / "project" / "work"
    here.mkdir(parents=True)
    (here / "precious.txt").write_text("keep me")
    monkeypatch.chdir(here)
    target = {".": Path("."), "..": Path(".."), "absolute": here}[spelling]
    before = snapshot(tmp_path, pipeline.root)
    run(*WRITERS[writer][0](pipeline, target), "--force", mentions=("current folder",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("case", ["mask over its scores", "plot over its file", "score into the model",
                                  "train over the base", "apply over its delta", "diff over its run"])  # fmt: skip
def test_force_never_replaces_what_the_command_reads(case, pipeline, tmp_path):
    """Each of these exited 0 and destroyed its own input: the scores became a mask, the
    mask a PNG, the model's weights a mask, the base model a run, the delta a model."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(pipeline.model, model)
    scores, mask = tmp_path / "scores.safetensors", tmp_path / "mask.safetensors"
    shutil.copy(pipeline.scores, scores)
    shutil.copy(pipeline.mask, mask)
    folder = tmp_path / "deltas"
    folder.mkdir()
    shutil.copy(pipeline.delta, folder / "delta.safetensors")
    run_dir = copy_run(pipeline.run, tmp_path / "run")
    score = ("score", model, "--task", "cb", "-p", "0.05", "--max-length", "24", *DATA(pipeline))
    args, read = {
        "mask over its scores": (("mask", scores, "-p", "0.01", "-o", scores), scores),
        "plot over its file": (("inspect", mask, "--plot", mask), mask),
        "score into the model": ((*score, "-o", model / "model.safetensors"), model),
        "train over the base": (
            ("train", model, "--method", "full", "--task", "cb", "-o", model, *ONE_STEP, *DATA(pipeline)),
            model,
        ),  # fmt: skip
        "apply over its delta": (
            ("apply", folder / "delta.safetensors", "--base", pipeline.model, "-o", folder),
            folder / "delta.safetensors",
        ),  # fmt: skip
        "diff over its run": (("diff", run_dir, "-o", run_dir / "model.safetensors"), run_dir),
    }[case]
    before = snapshot(tmp_path, pipeline.root)
    run(*args, "--force", mentions=("would replace what the command reads", str(read)))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("writer", ["train", "apply"])
def test_a_folder_output_never_replaces_a_file(writer, pipeline, tmp_path):
    """`train -o mask.safetensors --force` (a mask named as OUT by mistake) deleted the
    file to put a run dir in its place."""
    victim = tmp_path / "mask.safetensors"
    victim.write_bytes(pipeline.mask.read_bytes())
    before = snapshot(tmp_path, pipeline.root)
    run(*WRITERS[writer][0](pipeline, victim), "--force", mentions=(str(victim), "is a file"))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


def _shell(*args: str, stdout) -> subprocess.CompletedProcess:
    """`python -m sparsetune ARGS` with stdout on `stdout` (None: closed, as by `>&-`)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-m", "sparsetune", *map(str, args)]
    if stdout is None:
        return subprocess.run(command, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1))
    with open(stdout, "wb") as handle:
        return subprocess.run(command, env=env, stdout=handle, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize(
    "case",
    ["--version", "--help", "mask --help", "diff to stdout", "diff, stdout closed", "tasks, stdout closed",
     "inspect, stdout closed", "eval --json, stdout closed", "completions, stdout closed"],
)  # fmt: skip
def test_stdout_that_cannot_be_written(case, pipeline, tmp_path):
    """`--version`/`--help` > /dev/full were tracebacks (written while click parses), so
    was `diff RUN >&-` (sys.stdout is None); `diff RUN > /dev/full` said only "no space".
    `tasks`, `inspect`, `eval --json` and `completions` with stdout closed exited 0 with
    their output lost."""
    args = {
        "--version": ("--version",),
        "--help": ("--help",),
        "mask --help": ("mask", "--help"),
        "tasks, stdout closed": ("tasks", "--data-dir", pipeline.data),
        "inspect, stdout closed": ("inspect", pipeline.mask),
        "eval --json, stdout closed": ("eval", pipeline.run, "--data-dir", pipeline.data, "--json"),
        "completions, stdout closed": ("completions", "bash"),
    }.get(case, ("diff", pipeline.run, "-q"))
    before = snapshot(tmp_path, pipeline.root)
    done = _shell(*args, stdout=None if "closed" in case else "/dev/full")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    if case.startswith("diff"):
        assert "stdout" in lines[0], lines
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))


@pytest.mark.parametrize("writer", sorted(name for name, (_, folder) in WRITERS.items() if not folder))
def test_a_file_output_spelled_as_a_folder(writer, pipeline, tmp_path):
    """`-o out/` wrote a file named `out`: a trailing slash names a folder, which a file
    output cannot be."""
    args = WRITERS[writer][0](pipeline, f"{tmp_path / 'out'}/")
    before = snapshot(tmp_path, pipeline.root)
    run(*args, code=1, mentions=("is a folder",))
    assert_unchanged(before, snapshot(tmp_path, pipeline.root))
