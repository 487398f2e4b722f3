"""Tasks: data schema, inputs, heads and metrics (see `sparsetune tasks`)."""

from .base import Task
from .metrics import METRICS
from .registry import TASKS, get_task, register_task

__all__ = ["METRICS", "TASKS", "Task", "get_task", "register_task"]
