"""Scoring methods: who decides which entries of θ0 may change.

    sparsetune score --task rte -p 0.005 --method sam

One file per method registers a `Scorer` subclass with `@register_scorer("name")`;
`sparsetune.stages.score` runs whichever the config names. Importing this package
imports every module in it, so adding a method is one new file, and the contract tests
pick it up from `SCORERS`.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import Scorer, ScoringContext
from .registry import SCORERS, get_scorer, register_scorer


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "registry"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()

__all__ = ["SCORERS", "Scorer", "ScoringContext", "get_scorer", "register_scorer"]
