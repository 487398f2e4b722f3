"""The training-method registry: name -> `TrainingMethod` subclass."""

from __future__ import annotations

from ..errors import UsageError
from ..registry import registrar

METHODS: dict[str, type] = {}


register_method = registrar(METHODS, "training method")
"""Class decorator: make a `TrainingMethod` available as `--method name`."""


def get_method(name: str) -> type:
    """The method class registered as `name`; a usage error listing the known ones."""
    if name not in METHODS:
        raise UsageError(f"unknown --method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


__all__ = ["METHODS", "get_method", "register_method"]
