"""Errors a user can act on.

The CLI turns every `SparsetuneError` into one red line and a non-zero exit; anything
else is a bug and keeps its traceback. Messages name the flag or file, say what was
expected, and how to fix it, because that line is all the user sees.

Exit codes: 2 when the command line itself is wrong (`UsageError`: a flag's value, a
missing flag, flags that contradict each other or the run being resumed), 1 when what it
points at is wrong or unusable (every other class: a file, the data, a model, an output
in the way, the disk, the hub, the numbers), 130 when interrupted, 143 when terminated.
"""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator


class SparsetuneError(Exception):
    """Base class: a problem with the user's input or environment, not a bug."""

    exit_code = 1


class UsageError(SparsetuneError):
    """A flag or argument has a value we cannot use (exit code 2, like click)."""

    exit_code = 2


class DataError(SparsetuneError):
    """Task data is missing, malformed, or does not match the task."""


class FileFormatError(SparsetuneError):
    """A file is not the sparsetune file it claims to be, or is corrupt."""


class MismatchError(SparsetuneError):
    """Two artefacts that must agree do not (a mask and a model, a delta and a base)."""


class OutputExistsError(SparsetuneError):
    """Refusing to overwrite; the message names the flag that allows it."""


class OutputError(SparsetuneError):
    """An output cannot be written: a read-only folder, a path under a regular file, a
    full disk. Nothing half-written is left behind (`io.atomic_path`)."""


class RunInUseError(SparsetuneError):
    """A run dir is held by another live sparsetune process (its lock file names the pid)."""


class ModelLoadError(SparsetuneError):
    """A model or tokenizer cannot be loaded from what MODEL (or a file) names."""


class HubUnreachableError(SparsetuneError):
    """A hub id or hub data set was asked for, the hub cannot be reached, and the local
    cache does not hold it: an environment problem, not a usage error."""


class NumericalError(SparsetuneError):
    """A computation lost its numbers (fp16 overflow while scoring): a setting to change."""


class TrainingError(SparsetuneError):
    """Training cannot go on (non-finite loss, missing checkpoint)."""


class TrainingInterrupted(TrainingError):
    """Ctrl-C during training: a checkpoint was written; exit like a SIGINT (130)."""

    exit_code = 130


class TrainingTerminated(TrainingInterrupted):
    """SIGTERM during training: as Ctrl-C, but exit like a SIGTERM (143)."""

    exit_code = 143


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is (`sigterm_unwinds`), so that it unwinds as
    from Ctrl-C: `finally` blocks remove temporary files and release locks, and a grid
    passes SIGTERM on to its workers. Exit 143."""


def interruption(error: KeyboardInterrupt) -> tuple[str, int]:
    """What stopped a command, in words, and the exit code a shell expects (128 + signal)."""
    if isinstance(error, Terminated):
        return "terminated (SIGTERM)", TrainingTerminated.exit_code
    return "interrupted (Ctrl-C)", TrainingInterrupted.exit_code


def training_stopped(interrupt: KeyboardInterrupt, message: str) -> TrainingInterrupted:
    """The error that ends an interrupted run or grid: exit 143 after SIGTERM, else 130."""
    return (TrainingTerminated if isinstance(interrupt, Terminated) else TrainingInterrupted)(message)


def _raise_terminated(signum, frame) -> None:
    raise Terminated


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises `Terminated` inside the block, in the main thread; the handler
    before is restored after it (the default, or an ignored SIGTERM kept ignored: nohup-
    like wrappers ignore it on purpose). Used by the CLI and by a grid's workers."""
    previous, installed = signal.getsignal(signal.SIGTERM), False
    if previous is not signal.SIG_IGN:
        try:
            signal.signal(signal.SIGTERM, _raise_terminated)
            installed = True
        except ValueError:  # not the main thread
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGTERM, previous)


# transformers' words for a load that met tensors of other shapes point at a report it
# logs as a warning, which our quiet loads do not show: say what happened instead.
_MISMATCH = "ignore_mismatched_sizes"
_MISMATCH_SAID = "some of its tensors have other shapes than its config.json (or this task's head) asks for"


def first_line(err: Exception) -> str:
    """An exception's first line (or its type's name): what one error line quotes of a
    library's error (transformers, safetensors, Arrow, torch)."""
    text = str(err).strip()
    if _MISMATCH in text and "above report" in text:
        return _MISMATCH_SAID
    return text.splitlines()[0] if text else type(err).__name__
