"""Rendering library progress and results with rich, for every command alike."""

from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Iterator

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .app import console, out


@contextmanager
def progress_bar(quiet: bool = False) -> Iterator:
    """Yield a progress callback `(stage, done, total, **info)` drawing one bar per stage.

    With `quiet` the callback does nothing, so library code never checks a flag.
    """
    if quiet:
        yield lambda *args, **kwargs: None
        return
    bars = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int | None, **info: float) -> None:
        if stage not in tasks:
            tasks[stage] = bars.add_task(stage, total=total, info="")
        text = "  ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}" for key, value in info.items())
        bars.update(tasks[stage], completed=done, total=total, info=text)

    with bars:
        yield update


def print_json(data: object) -> None:
    """JSON on stdout, plain (no colour codes) so that scripts can parse it."""
    out.file.write(json.dumps(data, indent=2) + "\n")
    out.file.flush()


def say(message: str, quiet: bool = False) -> None:
    """A status line on stderr."""
    if not quiet:
        console.print(message)
