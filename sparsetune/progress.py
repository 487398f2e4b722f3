"""Progress reporting without a UI dependency.

The library reports progress through a callback; the CLI renders it with rich, tests
and scripts pass nothing. This keeps `import sparsetune` free of typer and rich.
"""

from __future__ import annotations

from typing import Callable, Protocol


class Progress(Protocol):
    def __call__(self, stage: str, done: int, total: int | None, **info: float) -> None: ...


def no_progress(stage: str, done: int, total: int | None, **info: float) -> None:
    """The default: say nothing."""


ProgressCallback = Callable[..., None]
