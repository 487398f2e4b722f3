"""Training methods: a registry the training loop, the CLI and the contract tests share.

    sparsetune train --method full --task cb -o out/

Adding a method is one new module in this package that subclasses
`base.TrainingMethod` and decorates it with `@register_method("name")`: importing this
package imports every module in it, so no table needs editing. What the method declares
on its class (`registry.py`: title, default lr, options with help and flags, whether it
projects) gives it its `train` flags, completions, default learning rate and its place
in the report, and `tests/contract/test_training_methods.py` covers it automatically.
"""

from __future__ import annotations

from ..registry import import_all
from .registry import METHODS, MethodFlag, get_method, method_flags, option, register_method

import_all(__name__, __path__)  # each module registers what it defines

__all__ = ["METHODS", "MethodFlag", "get_method", "method_flags", "option", "register_method"]
