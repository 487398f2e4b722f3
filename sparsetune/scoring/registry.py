"""Scoring methods: who decides which entries of θ0 may change (Fu et al. 2023, arXiv 2211.15583).

    sparsetune score --task rte -p 0.005 --method sam

One file per method registers a `Scorer` subclass with `@register_scorer("name")`;
`score` (in `run.py`) runs whichever the config names. Adding a method is one new
file imported below, and the contract tests pick it up from `SCORERS`.
"""

from __future__ import annotations

from ..errors import UsageError
from ..registry import registrar
from .base import Scorer, ScoringContext

SCORERS: dict[str, type[Scorer]] = {}


register_scorer = registrar(SCORERS, "scoring method")
"""Class decorator: make a `Scorer` available as `score --method name`."""


def get_scorer(name: str) -> Scorer:
    """An instance of the scorer registered as `name`; the error lists the known ones."""
    if name not in SCORERS:
        raise UsageError(f"unknown scoring --method {name!r}; known methods: {', '.join(sorted(SCORERS))}")
    return SCORERS[name]()


# Importing a method module registers it.
from . import bitfit, fisher, magnitude, random, sam  # noqa: E402,F401

__all__ = ["SCORERS", "Scorer", "ScoringContext", "get_scorer", "register_scorer"]
