"""What every bad-input test asserts, and the tools to make bad input.

Every test drives the CLI in-process through Typer's CliRunner (`sparsetune.cli.app`,
the one entry point), never library internals, so that the tests survive the package's
layout changes. A bad input must give:

- an exit code that is not 0 (and the one the README's table gives its kind);
- exactly one line on stderr, starting `error:` (an optional second line starting
  `hint:`), no traceback, and no long flag the command does not have;
- no new file and no changed file anywhere the command could write (`snapshot`).

The file tools re-sign what they edit (the checksum of a mask, scores or delta file, the
checksums of a checkpoint), computed here independently of the package, so that a test
of a wrong type reaches the schema check instead of stopping at the checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import signal
import stat
import struct
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save
from typer.testing import CliRunner

from sparsetune.cli import app

runner = CliRunner()
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*)")


# One short training step on the tiny model: what a case needs when training is not what it tests.
ONE_STEP = ("--max-steps", "1", "--batch-size", "8", "--max-length", "24")


def command_options(name: str) -> set[str]:
    """Every long option of a command (and the app's own)."""
    import typer.main

    group = typer.main.get_command(app)
    command = group.commands[name]
    options = {option for param in command.params for option in [*param.opts, *param.secondary_opts]}
    return {option for option in options if option.startswith("--")} | {"--help", "--version"}


def invoke(*args, quiet: bool = True, env: dict | None = None):
    """Run `sparsetune ARGS` in-process; `-q` is added where the command has it (its
    progress lines are not what is checked)."""
    args = [str(arg) for arg in args]
    if quiet and "--quiet" in command_options(args[0]) and "-q" not in args and "--quiet" not in args:
        args.append("-q")
    return runner.invoke(app, args, env=env)


def error_lines(result) -> list[str]:
    return [line for line in (result.stderr or "").splitlines() if line.strip()]


QUOTED = re.compile(r"sparsetune ([a-z]+)([^;)`\n]*)")


def assert_flags_exist(text: str, command: str) -> None:
    """Every long flag a message names is one the command has, except where the message
    quotes another command line (`sparsetune score ... --save-scores`): those flags must
    be that command's."""
    import typer.main

    commands = typer.main.get_command(app).commands
    rest = text
    for name, span in QUOTED.findall(text):
        if name in commands:
            foreign = sorted(set(FLAG.findall(span)) - command_options(name))
            assert not foreign, f"the message quotes `sparsetune {name}` with {foreign}, which it does not have: {text}"
            rest = rest.replace(f"sparsetune {name}{span}", "")
    foreign = sorted(set(FLAG.findall(rest)) - command_options(command))
    assert not foreign, f"the message names {foreign}, which `sparsetune {command}` does not have: {text}"


def assert_one_error(
    result, code: int | None = 1, *, command: str | None = None, mentions: tuple[str, ...] = ()
) -> str:
    """The contract of a refused input (by `sparsetune COMMAND`); returns the error line."""
    assert result.exit_code != 0, f"accepted: {result.output}"
    if code is not None:
        assert result.exit_code == code, f"exit {result.exit_code}, expected {code}: {result.output}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output, result.output
    lines = error_lines(result)
    assert len(lines) in (1, 2), f"expected one error line, got {len(lines)}: {lines}"
    assert lines[0].startswith("error:"), lines
    if len(lines) == 2:
        assert lines[1].startswith("hint:"), lines
    text = "\n".join(lines)
    if command is not None:
        assert_flags_exist(text, command)
    for word in mentions:
        assert word in text, f"{word!r} not in {text!r}"
    return lines[0]


def run(
    *args, code: int | None = 1, mentions: tuple[str, ...] = (), quiet: bool = True, env: dict | None = None
) -> str:
    """Invoke and assert a refusal in one step; returns the error line."""
    result = invoke(*args, quiet=quiet, env=env)
    return assert_one_error(result, code, command=str(args[0]), mentions=mentions)


def ok(*args, quiet: bool = True, env: dict | None = None):
    result = invoke(*args, quiet=quiet, env=env)
    assert result.exit_code == 0, result.output
    return result


# -- the file system before and after ------------------------------------------------
def snapshot(*roots: Path) -> dict[str, tuple[str, str]]:
    """Every file and folder under `roots`: kind and content digest (folders: kind only,
    their mtime moves when a temporary comes and goes)."""
    seen = {}
    for root in roots:
        root = Path(root)
        if not root.exists():
            continue
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                seen[str(Path(folder, name))] = ("dir", "")
            for name in files:
                path = Path(folder, name)
                if path.is_symlink() or not path.is_file():
                    seen[str(path)] = ("other", "")
                    continue
                seen[str(path)] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
    return seen


def assert_unchanged(before: dict, after: dict) -> None:
    new = sorted(set(after) - set(before))
    gone = sorted(set(before) - set(after))
    changed = sorted(path for path in before if path in after and before[path] != after[path])
    assert not new, f"new files: {new}"
    assert not gone, f"removed files: {gone}"
    assert not changed, f"changed files: {changed}"


# -- faults of the file system ---------------------------------------------------------
@contextlib.contextmanager
def read_only(folder: Path):
    """`folder` refuses new entries: mode 0555, or, for root (whom modes do not stop),
    the immutable attribute. The test fails if neither works here."""
    folder.mkdir(parents=True, exist_ok=True)
    immutable = False
    if os.geteuid() == 0:
        immutable = os.system(f"chattr +i '{folder}' 2>/dev/null") == 0
    else:
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
    try:
        probe = folder / ".probe"
        try:
            probe.write_text("x")
        except OSError:
            pass
        else:
            probe.unlink()
            raise AssertionError(f"cannot make {folder} read-only here (root without chattr +i support)")
        yield folder
    finally:
        if immutable:
            os.system(f"chattr -i '{folder}'")
        folder.chmod(0o755)


@contextlib.contextmanager
def full_disk(limit: int = 200):
    """Writes past `limit` bytes fail with EFBIG, as on a full disk (RLIMIT_FSIZE, with
    SIGXFSZ ignored so that the write returns the error instead of killing the process).
    Works for any user; in-process, so for commands that do not spawn workers."""
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


@contextlib.contextmanager
def devices_untouchable(monkeypatch):
    """A safety net for tests that name /dev/full: any attempt to replace, remove or
    chmod something under /dev fails the test instead of clobbering the device."""

    def guard(function):
        def guarded(*args, **kwargs):
            for arg in args[:2]:
                if isinstance(arg, (str, os.PathLike)) and str(arg).startswith("/dev/"):
                    raise AssertionError(f"{function.__name__} on {arg}")
            return function(*args, **kwargs)

        return guarded

    for name in ("replace", "rename", "unlink", "remove", "chmod", "rmdir"):
        monkeypatch.setattr(os, name, guard(getattr(os, name)))
    monkeypatch.setattr(shutil, "rmtree", guard(shutil.rmtree))
    yield


# -- editing files as a hostile user would ------------------------------------------------
def read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}, dict(handle.metadata() or {})


def checksum(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """The version-2 checksum, as the README describes it (independent of the package)."""
    digest = hashlib.sha256()
    digest.update(
        json.dumps({k: v for k, v in metadata.items() if k != "checksum"}, sort_keys=True, ensure_ascii=False).encode(
            "utf-8"
        )
    )
    for name in sorted(tensors):
        tensor = tensors[name].contiguous()
        digest.update(f"\0{name}\0{tensor.dtype}\0{list(tensor.shape)}\0".encode("utf-8"))
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def rewrite_safetensors(
    source: Path,
    target: Path,
    metadata: dict | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    sign: bool = True,
) -> Path:
    """Copy a sparsetune safetensors file with metadata keys replaced (a value None drops
    the key; non-strings are stored as JSON) and tensors replaced, re-signed."""
    old_tensors, old_metadata = read_safetensors(source)
    new_tensors = {**old_tensors, **(tensors or {})}
    new_metadata = dict(old_metadata)
    for key, value in (metadata or {}).items():
        if value is None:
            new_metadata.pop(key, None)
        else:
            new_metadata[key] = value if isinstance(value, str) else json.dumps(value)
    if sign and "checksum" in new_metadata:
        new_metadata["checksum"] = checksum(new_tensors, new_metadata)
    target.write_bytes(save(new_tensors, metadata=new_metadata))
    return target


def json_checksum(data: dict) -> str:
    return hashlib.sha256(
        json.dumps({k: v for k, v in data.items() if k != "checksum"}, sort_keys=True, ensure_ascii=False).encode(
            "utf-8"
        )
    ).hexdigest()


def edit_json(path: Path, edit) -> None:
    """Apply `edit(data)` (which may return a replacement) to a JSON file; a checkpoint
    state is re-signed."""
    data = json.loads(path.read_text())
    changed = edit(data)
    data = data if changed is None else changed
    if isinstance(data, dict) and "checksum" in data and path.name == "state.json":
        data["checksum"] = json_checksum(data)
    path.write_text(json.dumps(data))


def set_key(data: dict, dotted: str, value) -> None:
    """`data["a"]["b"] = value` for "a.b"; the value DROP removes the key."""
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    if value is DROP:
        data.pop(last, None)
    else:
        data[last] = value


DROP = object()


def flip_bit(data: bytes, offset: int, bit: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 1 << bit
    return bytes(changed)


def header_size(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


def copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target
