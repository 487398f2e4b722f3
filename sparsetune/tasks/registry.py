"""One place that maps a task name (or a task JSON file) to its `Task`."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError, UsageError
from .base import Task
from .custom import load_custom_task
from .paper import PAPER_TASKS

TASKS: dict[str, Task] = {task.name: task for task in PAPER_TASKS}


def register_task(task: Task) -> Task:
    """Make `task` available by name to every command."""
    TASKS[task.name] = task
    return task


def get_task(name_or_path: str | Task) -> Task:
    """A registered task by name, or a custom task from a `.json` spec file."""
    if isinstance(name_or_path, Task):
        return name_or_path
    key = str(name_or_path)
    if key.lower() in TASKS:
        return TASKS[key.lower()]
    if key.endswith(".json"):
        if not Path(key).is_file():
            raise DataError(f"task file {key} does not exist")
        return load_custom_task(key)
    raise UsageError(f"unknown task {key!r}; known tasks: {', '.join(TASKS)} (or a task .json file)")
