"""Grid workers die with the grid: no orphan keeps training after its parent is gone.

`sparsetune grid` runs each run in a child process. Killed outright (kill -9, an OOM
killer, a closed terminal), the parent runs no cleanup, and a child would go on training
and race a rerun for the same run dir. On Linux each child asks the kernel for a signal
when its parent dies (`prctl(PR_SET_PDEATHSIG, SIGTERM)`, through ctypes): SIGTERM makes
`train` checkpoint at the end of its step and stop, and ends anything else at once. The
setting survives `exec`, so a launcher (torchrun) started through

    python -m sparsetune.experiments.lifeline PARENT_PID COMMAND...

dies with the grid too and passes the SIGTERM on to its own workers. If the parent is
already gone when the child starts, the child stops at once. Elsewhere (macOS, Windows)
this is a no-op, and the run dir's lock (`run_lock`) still keeps a rerun from racing an
orphan.
"""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "SPARSETUNE_GRID_PARENT"  # the grid's pid, for its worker processes
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int | None) -> bool:
    """Have the kernel send this process SIGTERM when `parent` (its parent) dies; exit
    at once if it is already gone. Returns whether the kernel took the request."""
    if not sys.platform.startswith("linux") or parent is None:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        taken = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request was in place
        os._exit(143)
    return taken


def parent_from_env() -> int | None:
    value = os.environ.get(PARENT_ENV, "")
    return int(value) if value.isdigit() else None


def main(argv: list[str]) -> None:
    """`lifeline PARENT_PID COMMAND...`: die with PARENT_PID, then become COMMAND."""
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m sparsetune.experiments.lifeline PARENT_PID COMMAND...", file=sys.stderr)
        sys.exit(2)
    die_with_parent(int(argv[0]))
    try:
        os.execvp(argv[1], argv[1:])
    except OSError as err:
        print(f"error: cannot start {argv[1]!r}: {err.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
