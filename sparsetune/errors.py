"""Errors a user can act on.

The CLI turns every `SparsetuneError` into one red line and a non-zero exit; anything
else is a bug and keeps its traceback. Messages name the flag or file, say what was
expected, and how to fix it, because that line is all the user sees.
"""

from __future__ import annotations


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
