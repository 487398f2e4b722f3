"""How a method joins a registry (scoring methods, training methods).

A registry is a plain dict from name to class; `registrar` builds the class decorator
that fills it, names the class, and refuses a name taken by another class.
`import_all` imports every module of a package, so that a method is registered by
existing: a new one is one new file, with no list to edit.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Iterable, TypeVar

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


def import_all(package: str, path: Iterable[str]) -> None:
    """Import every module of `package` (found on `path`, its `__path__`), in name order."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
