"""The Typer app every command module registers on, and the error policy.

A `SparsetuneError` becomes one red line on stderr and its exit code (2 for usage
errors, like click); an OS error on the way (a read-only folder, a full disk) one line
naming the path (exit 1); Ctrl-C one line and exit 130; SIGTERM (`kill`, a scheduler)
one line and exit 143, after the same clean-up as Ctrl-C (no temporary file is left).
`SPARSETUNE_DEBUG=1` re-raises them with the traceback.
"""

from __future__ import annotations

import errno
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from .._version import __version__
from ..errors import SparsetuneError, UsageError, interruption, sigterm_unwinds

# Messages, progress and summaries go to stderr; stdout carries results (tables, JSON,
# a delta file) so that commands compose in pipes.
console = Console(stderr=True, highlight=False)
out = Console(highlight=False)


def report_error(error: SparsetuneError) -> None:
    """One red line. Under a multi-process launch the main process speaks for all about
    flags (every process checks the same ones); any other failure is a process's own
    and names its rank."""
    rank = os.environ.get("RANK", "0") or "0"
    if rank != "0":
        if isinstance(error, UsageError):
            return
        console.print(f"[bold red]error (rank {rank}):[/] {escape(str(error))}", soft_wrap=True, markup=True)
        return
    console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True, markup=True)


# A command's own output says what matters: transformers' reports (a new head's "Some
# weights ... were not initialized", deprecation notes) and progress bars ("Writing
# model shards") are off for the whole process, and the tokenizers' warning on the
# grid's and DataLoader's forks with them. The library only quiets its own loads and
# saves, and restores the state after (`models.quiet_transformers`).
CLI_ENVIRONMENT = {
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # transformers' and the hub's tqdm bars: ours is the progress shown
    "TOKENIZERS_PARALLELISM": "false",
}


class SparsetuneGroup(TyperGroup):
    """Turns library errors, and click's own usage errors (an unknown flag, a value not
    among the choices), into one line and an exit code at the one place every command
    passes through."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        for name, value in CLI_ENVIRONMENT.items():  # a user's own setting wins
            os.environ.setdefault(name, value)
        if "transformers" in sys.modules:  # imported before (a host process): it has read its variable
            logging = sys.modules["transformers"].utils.logging
            wanted = os.environ["TRANSFORMERS_VERBOSITY"].lower()
            logging.set_verbosity(logging.log_levels.get(wanted, logging.ERROR))
            if os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] not in ("", "0"):
                logging.disable_progress_bar()
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        if sys.stdout is None:  # started with stdout closed (`>&-`): Python then drops every print
            sys.stdout = _ClosedStdout()
        try:
            with sigterm_unwinds():
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.TyperException as error:  # click's usage errors
            if os.environ.get("SPARSETUNE_DEBUG") == "1":
                raise
            help_shown = type(error).__name__ == "NoArgsIsHelpError"  # `sparsetune` alone: the help was the answer
            if (os.environ.get("RANK", "0") or "0") == "0" and not help_shown:
                context = getattr(error, "ctx", None)
                hint = f" (see: {context.command_path} --help)" if context is not None else ""
                message = error.format_message() if hasattr(error, "format_message") else str(error)
                console.print(f"[bold red]error:[/] {escape(message)}{hint}", soft_wrap=True)
            sys.exit(getattr(error, "exit_code", 2))
        except typer.Abort:
            console.print("[bold red]error:[/] aborted", soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt as error:  # Ctrl-C while click parses (rare): as in a command
            message, code = interruption(error)
            console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
            sys.exit(code)
        except OSError as error:  # `--help` or `--version` (printed while parsing) to a full device
            if os.environ.get("SPARSETUNE_DEBUG") == "1" or error.errno == errno.EPIPE:
                raise
            report_error(SparsetuneError(describe_os_error(error)))
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except SparsetuneError as error:
            if os.environ.get("SPARSETUNE_DEBUG") == "1":
                raise
            report_error(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt as error:  # Ctrl-C or SIGTERM while a model loads, a score pass or a grid runs
            if os.environ.get("SPARSETUNE_DEBUG") == "1":
                raise
            message, code = interruption(error)
            report_error(SparsetuneError(message))
            raise typer.Exit(code) from None
        except OSError as error:  # a path we read or write: one line naming it
            if os.environ.get("SPARSETUNE_DEBUG") == "1" or error.errno == errno.EPIPE:
                raise
            report_error(SparsetuneError(describe_os_error(error)))
            raise typer.Exit(1) from None


class _ClosedStdout:
    """What a command started with stdout closed writes to: a result written there is an
    error (exit 1, one line), not output lost with exit 0. A command that prints
    nothing (`train -q`) runs as ever."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(errno.EBADF, "stdout is closed; give the output a file (-o) or open stdout")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def stdout_closed() -> bool:
    """Was the command started with stdout closed? (Then a result for stdout has nowhere to go.)"""
    return sys.stdout is None or isinstance(sys.stdout, _ClosedStdout)


def describe_os_error(error: OSError) -> str:
    from ..io import os_error_reason

    paths = [str(name) for name in (error.filename, error.filename2) if name is not None]
    where = f"{' -> '.join(paths)}: " if paths else ""
    return f"{where}{os_error_reason(error)}"


app = typer.Typer(
    name="sparsetune",
    cls=SparsetuneGroup,
    help="Sparse fine-tuning of transformers (Fu et al. 2023, arXiv 2211.15583): "
    "score entries, train only them, ship the delta.",
    epilog="Example: sparsetune score --task rte -p 0.005 && sparsetune train --mask mask.safetensors -o out/",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        out.print(f"sparsetune {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Sparse fine-tuning of transformers: score entries, train only them, ship the delta."""
