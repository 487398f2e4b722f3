"""Rendering library progress and results with rich, for every command alike."""

from __future__ import annotations

import json
import math
import os
import time
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ..errors import SparsetuneError
from ..runtime import is_main_process
from .app import console, out

PROGRESS_SECONDS_ENV = "SPARSETUNE_PROGRESS_SECONDS"


def _info_text(info: dict) -> str:
    return "  ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in info.items()
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class _Rate:
    """Steps per second and time left of one stage, from its first report on."""

    def __init__(self) -> None:
        self.started: dict[str, tuple[float, int]] = {}

    def __call__(self, stage: str, done: int, total: int | None) -> tuple[float | None, float | None]:
        now = time.monotonic()
        first_time, first_done = self.started.setdefault(stage, (now, done))
        if now <= first_time or done <= first_done:
            return None, None
        rate = (done - first_done) / (now - first_time)
        left = (total - done) / rate if total else None
        return rate, left


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator:
    """Yield a progress callback `(stage, done, total, **info)`.

    In a terminal it draws one rich bar per stage (with the rate); when stderr is a file
    or a pipe (CI, `nohup`, a log), it prints a plain line every
    `$SPARSETUNE_PROGRESS_SECONDS` seconds (default 10) and at the end of each stage, so
    that a log shows a long run as it goes. With `quiet`, and in every process of a
    multi-process launch but the main one, the callback does nothing, so library code
    never checks a flag.
    """
    if quiet or not is_main_process():
        yield lambda *args, **kwargs: None
        return
    if not console.is_terminal:
        yield _plain_lines(_progress_seconds())
        return
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}
    rates = _Rate()

    def update(stage: str, done: int, total: int | None, **info: float) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, info="", rate="")
        rate, _ = rates(stage, done, total)
        bars.update(
            tasks[stage], completed=done, total=total, info=_info_text(info), rate=f"{rate:.3g}/s" if rate else ""
        )

    with bars:
        yield update


def _progress_seconds() -> float:
    """`$SPARSETUNE_PROGRESS_SECONDS`, a number of seconds ≥ 0 (default 10)."""
    raw = os.environ.get(PROGRESS_SECONDS_ENV) or "10"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise SparsetuneError(f"{PROGRESS_SECONDS_ENV} must be a number of seconds ≥ 0, got {raw!r}")
    return seconds


def _plain_lines(every: float):
    rates = _Rate()
    last: dict[str, float] = {}

    def update(stage: str, done: int, total: int | None, **info: float) -> None:
        now = time.monotonic()
        rate, left = rates(stage, done, total)
        if now - last.get(stage, -math.inf) < every and done != total:
            return
        last[stage] = now
        parts = [f"{stage} {done}/{total}" if total else f"{stage} {done}", _info_text(info)]
        if rate:
            parts.append(f"{rate:.3g}/s")
        if left is not None and done != total:
            parts.append(f"ETA {_duration(left)}")
        console.print("  ".join(part for part in parts if part), markup=False, highlight=False, soft_wrap=True)
        console.file.flush()

    return update


def _strict(value: object) -> object:
    """NaN and ±inf as null: JSON has no such numbers, and strict parsers (JavaScript's,
    jq's) refuse Python's bare `NaN` (a metric of constant predictions, say)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    return value


def print_json(data: object, stream=None) -> None:
    """JSON on stdout (or `stream`), plain (no colour codes) so that scripts can parse it."""
    stream = stream or out.file
    stream.write(json.dumps(_strict(data), indent=2, allow_nan=False) + "\n")
    stream.flush()


def say(message: str, quiet: bool = False) -> None:
    """A status line on stderr."""
    if not quiet:
        console.print(message)
