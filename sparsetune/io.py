"""Writing files so that an interrupted command never leaves half a file behind.

Every output goes to a temporary sibling first and is renamed into place: a rename on
the same filesystem is atomic, so a reader sees the old file, the new file, or nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import OutputExistsError


def refuse_to_overwrite(path: str | os.PathLike, force: bool, flag: str = "--force") -> None:
    """Raise unless `path` is free or the user said `flag`."""
    if Path(path).exists() and not force:
        raise OutputExistsError(f"{path} already exists; pass {flag} to overwrite it")


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    Works for files and directories. On any exception the temporary is removed and
    `path` is left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    staging = tmp / target.name
    try:
        yield staging
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(path: str | os.PathLike, data: object) -> None:
    """Atomically write `data` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
