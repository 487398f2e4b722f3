"""Training methods: a registry the training loop, the CLI and the contract tests share.

    sparsetune train --method full --task cb -o out/

Adding a method is one new module in this package that subclasses
`base.TrainingMethod` and decorates it with `@register_method("name")`: importing this
package imports every module in it, so no table needs editing, and
`tests/contract/test_training_methods.py` covers it automatically.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import METHODS, get_method, register_method


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in ("base", "registry"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()

__all__ = ["METHODS", "get_method", "register_method"]
