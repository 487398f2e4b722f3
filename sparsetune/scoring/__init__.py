"""Scoring methods: who decides which entries of θ0 may change.

    sparsetune score --task rte -p 0.005 --method sam

One file per method registers a `Scorer` subclass with `@register_scorer("name")`;
`sparsetune.stages.score` runs whichever the config names. Importing this package
imports every module in it, so adding a method is one new file, and the contract tests
pick it up from `SCORERS`.
"""

from __future__ import annotations

from ..registry import import_all
from .base import Scorer, ScoringContext
from .registry import SCORERS, get_scorer, register_scorer

import_all(__name__, __path__)  # each module registers what it defines

__all__ = ["SCORERS", "Scorer", "ScoringContext", "get_scorer", "register_scorer"]
