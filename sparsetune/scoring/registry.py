"""The scoring-method registry: name -> `Scorer` subclass."""

from __future__ import annotations

from ..errors import UsageError
from ..registry import registrar
from .base import Scorer

SCORERS: dict[str, type[Scorer]] = {}


register_scorer = registrar(SCORERS, "scoring method")
"""Class decorator: make a `Scorer` available as `score --method name`."""


def get_scorer(name: str) -> Scorer:
    """An instance of the scorer registered as `name`; the error lists the known ones."""
    if name not in SCORERS:
        raise UsageError(f"unknown scoring --method {name!r}; known methods: {', '.join(sorted(SCORERS))}")
    return SCORERS[name]()


__all__ = ["SCORERS", "get_scorer", "register_scorer"]
