"""The command-line shell: parse flags -> one config -> one library call -> print.

Every command is a module of its own (its function, and `EPILOG`, its example); the list
below is all of them, in the order of `sparsetune --help`: the pipeline's. Nothing here
imports torch: a command imports the library inside its function, so `--help` is instant.
"""

from __future__ import annotations

from . import apply, completions, diff, eval, grid, inspect, mask, report, score, tasks, train
from .app import app

app.command("tasks", epilog=tasks.EPILOG)(tasks.tasks_command)
app.command("score", epilog=score.EPILOG)(score.score_command)
app.command("mask", epilog=mask.EPILOG)(mask.mask_command)
app.command("train", epilog=train.EPILOG)(train.train_command)
app.command("eval", epilog=eval.EPILOG)(eval.eval_command)
app.command("diff", epilog=diff.EPILOG)(diff.diff_command)
app.command("apply", epilog=apply.EPILOG)(apply.apply_command)
app.command("inspect", epilog=inspect.EPILOG)(inspect.inspect_command)
app.command("grid", epilog=grid.EPILOG)(grid.grid_command)
app.command("report", epilog=report.EPILOG)(report.report_command)
app.command("completions", epilog=completions.EPILOG)(completions.completions_command)


def main() -> None:
    app()


__all__ = ["app", "main"]
