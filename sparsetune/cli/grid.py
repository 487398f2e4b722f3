"""`sparsetune grid`: every (method, task, p, seed) of a config as score + train + eval.

sparsetune grid experiments/paper.toml --dry-run
sparsetune grid experiments/example.toml -o results/example/results.jsonl
"""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from ..errors import TrainingError, UsageError, interruption, training_stopped
from .app import console, out
from .options import DataDirOption, JsonOption, OptionalStr, QuietOption, named_path
from .render import print_json, progress_bar, say


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


EPILOG = (
    "Example: sparsetune grid experiments/paper.toml --dry-run   |   "
    "sparsetune grid experiments/example.toml -o results/example/results.jsonl --jobs 2"
)


def grid_command(
    config: str = typer.Argument(
        ..., help="Grid config (TOML, or YAML as .yaml/.yml): model, tasks, seeds, methods with their flags."
    ),
    output: str = typer.Option(
        "results.jsonl", "--output", "-o", help="Results file (JSONL); appended, so reruns resume."
    ),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Runs at once (each in its own process, cores split between them)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and a time estimate; run nothing."),
    tasks: OptionalStr = typer.Option(
        None, "--tasks", help="Run only these of the config's tasks (comma-separated). Default: all."
    ),
    methods: OptionalStr = typer.Option(
        None, "--methods", help="Run only these of the config's method names (comma-separated). Default: all."
    ),
    seeds: OptionalStr = typer.Option(
        None, "--seeds", help="Run only these of the config's seeds (comma-separated). Default: all."
    ),
    data_dir: OptionalStr = DataDirOption,
    launcher: OptionalStr = typer.Option(
        None,
        "--launcher",
        help='Run each run as a multi-process launch, e.g. "torchrun --nproc_per_node 2". Default: the '
        "config's, else one process.",
    ),
    start_within: Optional[float] = typer.Option(
        None,
        "--start-within",
        min=0,
        metavar="SECONDS",
        help="Start no run after SECONDS from now; the started ones finish. For a hard time limit: the limit "
        "minus the longest run. A rerun starts the rest.",
    ),
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """Run every (method, task, p, seed) of CONFIG as train + eval into a results file.

    Resumable: a rerun skips the runs already in the results file and resumes a
    killed run from its checkpoint.
    """
    from ..experiments.estimate import dry_run as plan_estimate
    from ..experiments.grid import check_max_lengths, load_grid, plan, select
    from ..experiments.results import finished_ids
    from ..experiments.runner import preflight, run_grid

    config_path, results_path = named_path(config, "CONFIG"), named_path(output, "-o")
    grid = load_grid(config_path)
    known = [method.name for method in grid.methods]
    grid = select(grid, _names(tasks, "--tasks"), _method_names(methods, known), _seeds(seeds))
    specs = plan(grid, data_dir)
    check_max_lengths(specs, config_path)  # found once now, not by every run
    done = finished_ids(results_path)
    if dry_run:
        rows, remaining, rate = plan_estimate(specs, done, grid.model)
        if as_json:
            print_json(
                {
                    "runs": [{"run_id": r.spec.run_id, "done": r.done, "seconds": r.seconds} for r in rows],
                    "remaining_seconds": remaining,
                    "jobs": jobs,
                }
            )
            return
        table = Table(title=f"{config_path}: {len(specs)} runs, {len(done)} done")
        for column in ("run", "train", "mask", "estimate"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                row.spec.run_id,
                row.spec.method.train,
                row.spec.method.score or "-",
                "done" if row.done else ("?" if row.seconds is None else _duration(row.seconds)),
            )
        out.print(table)
        console.print(
            f"estimate: {_duration(remaining / jobs)} with --jobs {jobs} "
            f"(measured {rate * 1e6:.2f} µs per example-token here; runs without local data not counted)"
        )
        return
    preflight(grid, results_path, data_dir, launcher, config_path)  # fails now, not in every run
    try:
        with progress_bar(quiet) as progress:
            results, failures, not_started = run_grid(
                specs, results_path, jobs, progress, launcher or grid.launcher, start_within
            )
    except KeyboardInterrupt as interrupt:  # passed on to the workers: each running one checkpointed
        word, _ = interruption(interrupt)
        message = f"grid {word}; finished runs are in {results_path}: rerun the same command to resume"
        raise training_stopped(interrupt, message) from None
    if not quiet and len(failures) > 1:  # the error line below quotes the first
        for failure in failures:
            console.print(f"[red]failed:[/] {failure}", soft_wrap=True)
    if as_json:
        print_json(
            {
                "finished": [r.run_id for r in results],
                "failed": failures,
                "not_started": not_started,
                "results": str(results_path),
            }
        )
    else:
        late = f", {len(not_started)} not started (--start-within: rerun to start them)" if not_started else ""
        counts = f"{len(results)} runs finished, {len(failures)} failed{late}, {len(done)} already done"
        say(f"{counts} -> {results_path}", quiet)
    if failures:
        first = failures[0] if len(failures) == 1 else f"first: {failures[0]}"
        raise TrainingError(
            f"{len(failures)} of {len(specs) - len(done)} runs failed ({first}); rerun the same command to retry them"
        )


def _names(value: str | None, flag: str) -> list[str] | None:
    """A comma-separated list (None when not given); an empty one is an error."""
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if not names:
        raise UsageError(f"{flag} is empty; name at least one, comma-separated")
    return names


def _method_names(value: str | None, known: list[str]) -> list[str] | None:
    """`--methods`, comma-separated, where a sweep's name holds commas itself
    (`SAM@lr=0.001,epochs=6`): at each place the longest run of parts that is a known
    name is one name; a part that starts none is passed on for `select` to refuse."""
    parts = _names(value, "--methods")
    if parts is None:
        return None
    names, start = [], 0
    while start < len(parts):
        end = next((end for end in range(len(parts), start, -1) if ",".join(parts[start:end]) in known), start + 1)
        names.append(",".join(parts[start:end]))
        start = end
    return names


def _seeds(value: str | None) -> list[int] | None:
    names = _names(value, "--seeds")
    try:
        return None if names is None else [int(name) for name in names]
    except ValueError:
        raise UsageError(f"--seeds must be whole numbers, comma-separated; got {value!r}") from None
