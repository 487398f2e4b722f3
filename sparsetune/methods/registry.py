"""The training-method registry: name -> `TrainingMethod` subclass, and what a method
declares for the CLI, the defaults and the report.

A method declares, on its class (`base.TrainingMethod` has the defaults):

    title        how `--help` names it ("LoRA")
    default_lr   its learning rate when `--lr` is not given (None: the task's, `defaults.py`)
    projects     its result is projected onto ⌊m·p⌋ entries (the report's Figure 1 group)
    needs_mask   it trains a given mask (`--mask`)
    Options      a frozen dataclass of its settings, `-O KEY=VALUE`; a field made with
                 `option()` carries its help text and may name CLI flags of its own

`method_flags()` turns the flags the methods declare into the options of `sparsetune
train` (and so into its `--help` and the shell completions): a new method's flags need
no edit anywhere else. The registry is read by the CLI at start-up, which is why method
modules import torch only inside their functions.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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


def option(default: Any, help: str, *flags: str, shown: str | None = None, least: float | None = None) -> Any:
    """A method setting: a dataclass field with its `help` (a phrase, no final period) and
    the CLI `flags` that set it besides `-O name=value` (e.g. "--lora-r"). `--help` shows
    "Default: <default>" unless `shown` says otherwise ("" for nothing). `least`: the
    smallest value a user may give, for a setting whose default is a sentinel below it
    (0: "derive it"), which a given value must not be mistaken for."""
    return dataclasses.field(
        default=default, metadata={"help": help, "flags": tuple(flags), "shown": shown, "least": least}
    )


@dataclasses.dataclass(frozen=True)
class MethodFlag:
    """An option of `sparsetune train` that sets one method setting (`--lora-r` -> lora_r)."""

    option: str  # the setting's name, as in -O NAME=VALUE
    flags: tuple[str, ...]  # e.g. ("-p", "--sparsity")
    type: type  # int, float or str: the type of the setting's default
    help: str  # "lora: rank r of each B·A. Default: 16."
    panel: str  # the --help panel, "Method options: LoRA"
    methods: tuple[str, ...]  # the methods that have the setting


def _shown(default: Any) -> str:
    return f"{default:g}" if isinstance(default, float) else str(default)


def method_flags(methods: dict[str, type] | None = None) -> list[MethodFlag]:
    """The CLI flags every registered method declares, in registry order. Methods that share
    a setting (diffpruning and childpruning: `-p`) share its flag; they must declare it with
    the same flags, type, default and help."""
    found: dict[str, dict[str, Any]] = {}
    for name, cls in (METHODS if methods is None else methods).items():
        for field in dataclasses.fields(cls.Options):
            flags = field.metadata.get("flags")
            if not flags:
                continue
            declared = (flags, type(field.default), field.default, field.metadata["help"], field.metadata["shown"])
            entry = found.setdefault(field.name, {"declared": declared, "methods": [], "titles": []})
            if entry["declared"] != declared:
                raise ValueError(
                    f"methods {entry['methods'][0]!r} and {name!r} declare setting {field.name!r} differently"
                )
            entry["methods"].append(name)
            entry["titles"].append(cls.title or name)
    result = []
    for key, entry in found.items():
        flags, kind, default, text, shown = entry["declared"]
        if kind not in (int, float, str):
            raise ValueError(f"setting {key!r}: a CLI flag takes an int, float or str, not {kind.__name__}")
        shown = _shown(default) if shown is None else shown
        help_text = f"{'/'.join(entry['methods'])}: {text}." + (f" Default: {shown}." if shown else "")
        panel = "Method options: " + " / ".join(entry["titles"])
        result.append(MethodFlag(key, flags, kind, help_text, panel, tuple(entry["methods"])))
    return result


__all__ = ["METHODS", "MethodFlag", "get_method", "method_flags", "option", "register_method"]
