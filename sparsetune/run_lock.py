"""One live process per run dir: `OUT/.sparsetune.lock` names the pid that trains OUT.

A grid rerun (or a second `train -o OUT`) while a killed grid's worker still trains the
same run would race it: two processes writing one checkpoint. So the process that
trains a run holds an exclusive `flock` on the lock file for as long as it runs, and
writes its pid there; another process that finds the lock held refuses, naming the pid.
The kernel drops the lock when its holder dies, however it dies (kill -9 included), so
a lock file left by a crash is stale and is taken over: no pid guessing, no reuse of a
dead pid's number. A run dir whose lock file is stale and that holds neither a
checkpoint nor a finished run is the remains of a run killed before its first
checkpoint: rerunning the same command starts it over (`stages/train/setup.py`).

On systems without `fcntl` (Windows) there is no lock: nothing is refused.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import RunInUseError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_FILE = ".sparsetune.lock"


def _recorded_pid(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def holder(folder: str | os.PathLike) -> int | None:
    """The pid of the live process holding `folder`'s lock (0 when it wrote none yet),
    or None: no lock file, or a stale one."""
    path = Path(folder) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _recorded_pid(path) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def in_use_message(folder: str | os.PathLike, pid: int | None) -> str:
    who = f"pid {pid}" if pid else "another process"
    stop = f" (kill {pid})" if pid else ""
    return f"{folder} is in use by another sparsetune process ({who}); wait for it to end or stop it{stop}, then rerun"


def check_free(folder: str | os.PathLike) -> None:
    """Raise `RunInUseError` when a live process holds `folder`'s lock."""
    pid = holder(folder)
    if pid is not None:
        raise RunInUseError(in_use_message(folder, pid))


def has_stale_lock(folder: str | os.PathLike) -> bool:
    """A lock file that no live process holds: its run died without cleaning up."""
    return (Path(folder) / LOCK_FILE).is_file() and holder(folder) is None


class RunLock:
    """The exclusive lock on a run dir, held from `acquire` to `release`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        if fcntl is None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunInUseError(in_use_message(self.folder, _recorded_pid(self.path))) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file, then let go of the lock (a finished run leaves no lock file)."""
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None
