"""The one way a method joins a registry (scoring methods, training methods).

A registry is a plain dict from name to class; `registrar` builds the class
decorator that fills it, names the class, and refuses a name taken by another class.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T", bound=type)


def registrar(table: dict[str, type], kind: str) -> Callable[[str], Callable[[T], T]]:
    """`@registrar(TABLE, "scoring method")("sam")` registers a class as `sam`."""

    def register_as(name: str) -> Callable[[T], T]:
        def register(cls: T) -> T:
            if name in table and table[name] is not cls:
                raise ValueError(f"{kind} {name!r} is registered twice")
            cls.name = name
            table[name] = cls
            return cls

        return register

    return register_as


def declared_names(package: str, decorator: str) -> tuple[str, ...]:
    """The names a package's modules register, read from their source, not imported.

    The CLI lists `--method` choices in `--help` and in completions; importing the
    method modules would import torch and cost seconds on every `--help`. The contract
    tests check that these names are exactly the registry's.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return ()
    pattern = re.compile(rf'@{decorator}\(\s*"([^"]+)"\s*\)')
    names: list[str] = []
    for folder in spec.submodule_search_locations:
        for path in sorted(Path(folder).glob("[!_]*.py")):  # modules, not the package's docstring
            names += pattern.findall(path.read_text(encoding="utf-8"))
    return tuple(sorted(set(names)))
