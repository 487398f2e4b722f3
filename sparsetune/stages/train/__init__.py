"""`sparsetune train`: setup.py resolves the flags into a ready run, loop.py trains it."""

from .loop import train

__all__ = ["train"]
