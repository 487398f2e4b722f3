"""Training methods: a registry the training loop, the CLI and the contract tests share.

    sparsetune train --method full --task cb -o out/

Adding a method is one new module in this package that subclasses
`base.TrainingMethod` and decorates it with `@register_method("name")`; every module
here is imported on first use, so no table needs editing, and
`tests/contract/test_training_methods.py` covers it automatically.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import UsageError
from ..registry import registrar

METHODS: dict[str, type] = {}


register_method = registrar(METHODS, "training method")
"""Class decorator: make a `TrainingMethod` available as `--method name`."""


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")


def get_method(name: str) -> type:
    """The method class registered as `name`; a usage error listing the known ones."""
    if name not in METHODS:
        raise UsageError(f"unknown --method {name!r}; known methods: {', '.join(sorted(METHODS))}")
    return METHODS[name]


_import_all()

__all__ = ["METHODS", "get_method", "register_method"]
