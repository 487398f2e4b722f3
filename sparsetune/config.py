"""Frozen configurations, one per stage: what a library call needs, nothing it computes.

The CLI builds one of these from its flags and passes it to one library function; a
Python user builds the same object. Defaults live here, once.
"""

from __future__ import annotations
