"""The one way a method joins a registry (scoring methods, training methods).

A registry is a plain dict from name to class; `registrar` builds the class
decorator that fills it, names the class, and refuses a name taken by another class.
"""

from __future__ import annotations

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
