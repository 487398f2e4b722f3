"""Progress reporting without a UI dependency.

The library reports progress through a callback; the CLI renders it with rich, tests
and scripts pass nothing. This keeps `import sparsetune` free of typer and rich.
"""

from __future__ import annotations

from typing import Callable

ProgressCallback = Callable[..., None]
"""`progress(stage, done, total, **info)`: e.g. ("train", 12, 300, loss=0.41, lr=1e-4)."""


def no_progress(stage: str, done: int, total: int | None, **info: float) -> None:
    """The default: say nothing."""
