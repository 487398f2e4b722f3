"""Saved files as first-class modules: what each holds, how it is read and written."""

from .common import file_kind, read_metadata
from .mask import Mask
from .scores import Scores

__all__ = ["Mask", "Scores", "file_kind", "read_metadata"]
