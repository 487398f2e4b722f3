"""Hyperparameters chosen on dev, never on test: the report section of a sweep.

A sweep is an ordinary grid whose method names carry the setting they try,
`Method@key=value` (experiments/lr_sweep.toml: `SAM@lr=0.001`). Each run records its
best score on the dev part (the held-out slice of train, see `sparsetune.data`); the
test score (official validation) plays no part in the choice.

Design notes: one setting per *method*, not per (method, task): a grid config's
`flags` are per method, and on small tasks (cb's dev part has 25 examples) a per-task
choice would mostly fit noise. The chosen setting has the best mean over tasks of the
per-task mean dev score over seeds; a setting is compared only if it covers every task
its method was swept on; a name run at several p (cola_gap.toml's SAM) is a setting per
p. Ties (common: cb's dev scores move in steps of 1/25) go to the
smallest value, for a learning rate the step that stays closest to θ0, and never to
whichever run happened to finish first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .results import RunResult

SWEEP_SEPARATOR = "@"


def split_variant(name: str) -> tuple[str, str] | None:
    """`"SAM@lr=0.001"` -> `("SAM", "lr=0.001")`; None for a name without a setting."""
    method, separator, setting = name.partition(SWEEP_SEPARATOR)
    return (method, setting) if separator and method and setting else None


@dataclass(frozen=True)
class Setting:
    method: str
    setting: str
    dev: dict[str, float]  # task -> mean best-dev score ×100 over seeds
    mean: float  # over tasks
    chosen: bool = False


def _value_order(setting: str) -> tuple[int, float, str]:
    """Numeric values in numeric order ("lr=3e-05" before "lr=0.0001"), then the rest."""
    value = setting.partition("=")[2]
    try:
        return (0, float(value), setting)
    except ValueError:
        return (1, 0.0, setting)


def dev_score(result: RunResult) -> float | None:
    """The best dev score of a run ×100 (None when it had no dev part)."""
    score = result.dev.get("score")
    return None if score is None else 100 * float(score)


def choose_on_dev(results: list[RunResult]) -> list[Setting]:
    """Every swept (method, setting) with its dev scores, the chosen one marked."""
    p_values: dict[str, set] = {}
    for result in results:
        p_values.setdefault(result.method, set()).add(result.p)
    collected: dict[tuple[str, str], dict[str, list[float]]] = {}
    for result in results:
        variant, score = split_variant(result.method), dev_score(result)
        if variant is not None and score is not None:
            if len(p_values[result.method]) > 1:  # one name run at several p: p is part of the setting
                variant = (variant[0], f"{variant[1]},p={'dense' if result.p is None else format(result.p, 'g')}")
            collected.setdefault(variant, {}).setdefault(result.task, []).append(score)
    tasks_of: dict[str, set[str]] = {}
    for (method, _), per_task in collected.items():
        tasks_of.setdefault(method, set()).update(per_task)
    methods = list(tasks_of)
    settings = []
    for (method, setting), per_task in sorted(
        collected.items(), key=lambda item: (methods.index(item[0][0]), _value_order(item[0][1]))
    ):
        dev = {task: float(np.mean(scores)) for task, scores in per_task.items()}
        complete = set(dev) == tasks_of[method]
        settings.append(Setting(method, setting, dev, float(np.mean(list(dev.values()))) if complete else float("nan")))
    best: dict[str, Setting] = {}
    for item in settings:
        if item.mean == item.mean and (
            item.method not in best or round(item.mean, 9) > round(best[item.method].mean, 9)
        ):
            best[item.method] = item
    return [Setting(s.method, s.setting, s.dev, s.mean, chosen=best.get(s.method) is s) for s in settings]


def choices_markdown(settings: list[Setting]) -> str:
    """The dev table: one row per (method, setting), the chosen setting in bold."""
    tasks = sorted({task for item in settings for task in item.dev})
    lines = [
        "| method | setting | " + " | ".join(f"dev {task}" for task in tasks) + " | mean dev | chosen |",
        "|---|---|" + "---:|" * (len(tasks) + 1) + "---|",
    ]
    for item in settings:
        cells = [f"{item.dev[task]:.1f}" if task in item.dev else "–" for task in tasks]
        mean = "–" if item.mean != item.mean else f"{item.mean:.1f}"
        mark = "**yes**" if item.chosen else ""
        lines.append(f"| {item.method} | {item.setting} | " + " | ".join(cells) + f" | {mean} | {mark} |")
    return "\n".join(lines) + "\n"
