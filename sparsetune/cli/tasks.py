"""`sparsetune tasks`: the task registry, with row counts where data is present."""

from __future__ import annotations

from rich.table import Table

from .app import out
from .options import DataDirOption, JsonOption, OptionalStr, QuietOption, TaskOption
from .render import print_json


def _row_count(path) -> int | None:
    if path is None or not path.is_file():
        return None
    with path.open("rb") as lines:  # counting needs no decoding (a non-UTF-8 file is reported where it is read)
        return sum(1 for line in lines if line.strip())


EPILOG = "Example: sparsetune tasks --data-dir ../shared/data   |   custom: sparsetune tasks --task my_task.json"


def tasks_command(
    task: OptionalStr = TaskOption,
    data_dir: OptionalStr = DataDirOption,
    quiet: bool = QuietOption,
    as_json: bool = JsonOption,
) -> None:
    """List the tasks: type, labels, metrics, and row counts when the data is on disk.

    A custom task is a JSON file, passed as --task my_task.json to any command:
    {"name", "train", "validation", "text": \\[col] or \\[col1, col2], "label",
    "type": classification|regression, "labels": \\[...] (classification),
    "range": \\[low, high] (regression, optional), "metric"}.
    """
    from ..data import resolve_data_dir, split_file
    from ..tasks import TASKS, get_task

    root = resolve_data_dir(data_dir)  # a data dir named (flag or environment) but missing is an error, not "-"
    chosen = [get_task(task)] if task else list(TASKS.values())
    rows = []
    for item in chosen:
        counts = {split: _row_count(split_file(item, split, root)) for split in ("train", "validation")}
        rows.append(
            {
                "task": item.name,
                "type": item.head,
                "labels": list(item.labels) if item.labels and item.head != "multiple_choice" else None,
                "range": list(item.label_range) if item.label_range else None,
                "metric": item.metric,
                "components": list(item.metric_components),
                "train": counts["train"],
                "validation": counts["validation"],
                "source": "/".join(item.hub) if item.hub else "files",
                "description": item.description,
            }
        )
    if as_json:  # --json wins over -q, as on every command: a script asked for it
        print_json(rows)
        return
    if quiet:  # a check that the task (and its data dir) resolves, for scripts
        return
    table = Table(title="sparsetune tasks", caption="score = the paper's combined metric; validation is the test set")
    for column in ("task", "type", "labels", "score", "train", "validation"):
        table.add_column(column, justify="right" if column in ("train", "validation") else "left")
    for row in rows:
        metric = row["metric"] if len(row["components"]) == 1 else f"mean of {' + '.join(row['components'])}"
        table.add_row(
            row["task"],
            row["type"],
            ", ".join(row["labels"]) if row["labels"] else "-",
            metric,
            "-" if row["train"] is None else str(row["train"]),
            "-" if row["validation"] is None else str(row["validation"]),
        )
    out.print(table)
