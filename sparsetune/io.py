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
        normal_modes(staging)
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def normal_modes(path: str | os.PathLike) -> None:
    """Give a staged file (or every file and folder of a staged tree) the mode a plain
    `open()` would have given it under the user's umask. Temporary files are private
    (0600, 0700: safetensors' writer and mkdtemp), which must not leak into outputs
    that others read, e.g. a model dir shared with a team."""
    mask = _umask()
    root = Path(path)
    if not root.exists() or root.is_symlink():
        return
    if root.is_file():
        root.chmod(0o666 & ~mask)
        return
    root.chmod(0o777 & ~mask)
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            Path(folder, name).chmod(0o777 & ~mask)
        for name in files:
            Path(folder, name).chmod(0o666 & ~mask)


def write_json(path: str | os.PathLike, data: object) -> None:
    """Atomically write `data` as indented JSON."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n", encoding="utf-8")
