"""The command-line shell: parse flags, call one library function, print.

Each command lives in its own module and registers itself on `app`; importing them
here is what makes them appear.
"""

from __future__ import annotations

# Registration order is the order of `sparsetune --help`: the pipeline's.
from . import tasks, score, mask, train, eval, diff, apply, inspect, grid, completions  # noqa: F401, E401, I001
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
