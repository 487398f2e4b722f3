"""Writing files so that an interrupted command never leaves half a file behind.

Every output goes to a temporary sibling first and is renamed into place: a rename on
the same filesystem is atomic, so a reader sees the old file, the new file, or nothing.
An OS error on the way (a read-only folder, a path under a regular file, a full disk)
becomes an `OutputError` naming the output, not the temporary, and removes the
temporary. A device or pipe (`-o /dev/null`) is written through, never replaced.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError, OutputExistsError, UsageError

_REASONS = {
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for the file system or the process's file size limit (is the disk full?)",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.ENAMETOOLONG: "the name is too long",
}


def loads_json(text: str | bytes):
    """`json.loads` for a file a user hands us: nesting too deep for the parser (a
    hostile `[[[[...]]]]`) is a `JSONDecodeError` like any other bad JSON, not a
    `RecursionError` traceback."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", text if isinstance(text, str) else "", 0) from None


def os_error_reason(error: OSError) -> str:
    """A short lower-case reason for an OS error, without the path."""
    if error.errno in _REASONS:
        return _REASONS[error.errno]
    return (error.strerror or type(error).__name__).lower()


def is_special(path: str | os.PathLike) -> bool:
    """A device, pipe or socket (`/dev/null`, `/dev/full`, a FIFO): written through, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_named(path: str | os.PathLike, what: str = "") -> None:
    """An empty path (`-o ""`) names no file: `Path("")` is the current folder."""
    if not str(path).strip():
        raise UsageError(f"{what or 'the output'} is an empty path; give a file or folder name")


def check_replaceable(path: str | os.PathLike, what: str = "") -> None:
    """A folder output that would be replaced must not be the current folder or one that
    holds it (`-o . --force`, `-o .. --force`): replacing it would delete the folder the
    command runs in, and everything in it, before the rename fails."""
    target = Path(path)
    if not target.is_dir() or target.is_symlink():
        return
    try:
        here, there = Path.cwd().resolve(), target.resolve()
    except OSError:
        return
    if here == there or there in here.parents:
        label = f"{what} {path}".strip()
        raise OutputError(f"cannot replace {label}: it is the current folder or holds it; give a new folder name")


def check_not_an_input(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], what: str = "-o") -> None:
    """`--force` replaces an output, never what the command reads: an input itself, a
    folder that holds one, or a file inside an input folder (`score m -o
    m/model.safetensors --force` would replace the model's weights with a mask, `train m
    -o m --force` the base model with the run). A new file beside an input is fine."""
    target = Path(output)
    if not str(output).strip() or not target.exists() or is_special(target):
        return
    there = target.resolve()
    for item in inputs:
        if item is None or not str(item).strip() or not Path(item).exists():  # None, a hub id
            continue
        source = Path(item).resolve()
        if there == source or there in source.parents or (source.is_dir() and source in there.parents):
            raise OutputError(f"{what} {output} would replace what the command reads ({item}); give another output")


PLOT_FORMATS = ("png", "pdf", "svg")  # what matplotlib writes without extra packages


def plot_format(path: str | os.PathLike, flag: str = "--plot") -> str:
    """The image format a plot path names by its suffix (a `.jpg` got PNG bytes under its
    name); a path without one is a PNG."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if not suffix:
        return "png"
    if suffix not in PLOT_FORMATS:
        raise UsageError(f"{flag} {path}: a plot is written as {', '.join('.' + f for f in PLOT_FORMATS)}")
    return suffix


def refuse_to_overwrite(path: str | os.PathLike, force: bool, flag: str = "--force", what: str = "") -> None:
    """Raise unless `path` is free or the user said `flag`. Writing to a device or a
    pipe (`-o /dev/null`) overwrites nothing. An empty path is refused (`what` names its flag)."""
    check_named(path, what)
    if Path(path).exists() and not force and not is_special(path):
        raise OutputExistsError(f"{path} already exists; pass {flag} to overwrite it")


def _blocking_ancestor(target: Path) -> Path | None:
    """The first existing ancestor of `target` that is not a folder (so nothing can be
    created under it), or None."""
    for parent in target.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_writable(path: str | os.PathLike, what: str = "", folder: bool = False) -> None:
    """Fail in a second, before any long work, when `path` cannot be created: a part of
    it is a regular file, the nearest existing folder refuses a new file (read-only,
    permissions), or a file output names an existing folder (which replacing would
    delete). An existing folder output (a run dir, a report dir) is probed inside.
    Creates nothing that stays. `what` names the flag (e.g. "-o")."""
    check_named(path, what)
    target = Path(path)
    label = f"{what} {target}".strip()
    if is_special(target):
        return
    if not folder and (target.is_dir() or str(path).endswith(("/", os.sep))):  # `-o out/` names a folder
        raise OutputError(f"cannot write {label}: it is a folder; give a file name")
    if folder and target.is_file():  # --force replaces a folder output, never a file in its place
        raise OutputError(f"cannot write {label}: it is a file, not a folder; give a folder name")
    blocker = _blocking_ancestor(target)
    if blocker is not None:
        raise OutputError(f"cannot write {label}: {blocker} is a file, not a folder")
    candidates = [target] if target.is_dir() else []
    nearest = next((parent for parent in [*candidates, *target.parents] if parent.exists()), Path("."))
    try:
        handle, probe = tempfile.mkstemp(prefix=".sparsetune-probe.", dir=nearest)
    except OSError as err:
        raise OutputError(f"cannot write {label}: {os_error_reason(err)} ({nearest})") from None
    os.close(handle)
    os.unlink(probe)


def output_error(target: Path, err: OSError) -> OutputError:
    """The one line for an OS error met while writing `target` (`.reason` without the path)."""
    blocker = _blocking_ancestor(target)
    if blocker is not None and err.errno in (errno.EEXIST, errno.ENOTDIR):
        reason = f"{blocker} is a file, not a folder"
    elif err.errno == errno.EEXIST and target.exists() and not target.is_dir():
        reason = "it is a file or a device, not a folder"
    else:
        reason = os_error_reason(err)
    error = OutputError(f"cannot write {target}: {reason}")
    error.reason = reason
    return error


@contextmanager
def writing(target: str | os.PathLike) -> Iterator[None]:
    """Turn the OS errors of a writer we do not control (transformers' save_pretrained,
    safetensors' Rust writer) into one `OutputError` naming `target`."""
    try:
        yield
    except OSError as err:
        raise output_error(Path(target), err) from None
    except Exception as err:  # noqa: BLE001 - safetensors' SafetensorError wraps the OS error in text
        if type(err).__name__ != "SafetensorError" or "IoError" not in str(err):
            raise
        text = str(err)
        reason = text.split('message: "', 1)[1].split('"', 1)[0].lower() if 'message: "' in text else text
        error = OutputError(f"cannot write {target}: {reason}")
        error.reason = reason
        raise error from None


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it onto `path`.

    Works for files and directories. On any exception the temporary is removed and
    `path` is left as it was; an OS error becomes an `OutputError` naming `path`. An
    existing device or pipe is yielded itself: written through, never replaced.
    """
    check_named(path)
    target = Path(path)
    if is_special(target):
        with writing(target):
            yield target
        return
    check_replaceable(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as err:
        raise output_error(target, err) from None
    staging = tmp / target.name
    try:
        try:
            yield staging
            normal_modes(staging)
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            os.replace(staging, target)
        except OSError as err:  # a write's error names no file, or the temporary, or the target
            names = [str(name) for name in (err.filename, err.filename2) if name is not None]
            if names and not any(name.startswith(str(tmp)) or name == str(target) for name in names):
                raise  # about something else (a file read on the way): as it is
            raise output_error(target, err) from None
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


def append_line(path: str | os.PathLike, line: str) -> None:
    """Append one line with a single write + fsync. A failed write (a full disk) is cut
    back to the file's previous size, so the file holds whole lines only and the next
    append does not follow half a line."""
    target = Path(path)
    data = line.encode("utf-8")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise output_error(target, err) from None
    try:
        size = os.fstat(fd).st_size
        try:
            written = 0
            while written < len(data):
                written += os.write(fd, data[written:])
            os.fsync(fd)
        except OSError as err:
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.ftruncate(fd, size)
            raise output_error(target, err) from None
    finally:
        os.close(fd)
