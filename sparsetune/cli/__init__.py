"""The command-line shell: parse flags, call one library function, print.

Each command lives in its own module and registers itself on `app`; importing them
here is what makes them appear.
"""

from __future__ import annotations

from . import completions, tasks  # noqa: F401  (each registers its command)
from . import inspect, mask, score  # noqa: F401  (sparsetune inspect / mask / score)
from . import apply, diff  # noqa: F401  (sparsetune apply / diff)
from . import eval, train  # noqa: F401  (sparsetune train / eval)
from . import grid  # noqa: F401  (sparsetune grid / report)
from .app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
