"""Task data: from the Hugging Face hub, or offline from `<dir>/<task>/{split}.jsonl`.

Protocol of the paper (and its code): the official validation split is the *test*
set, and a seeded fraction of train (`dev_fraction`, default 0.1) is held out for
model selection, so that no decision ever looks at the test set.

Local files are read line by line and checked against the task before anything else
happens, so that a bad row is reported with its file and line number instead of as a
shape error three stages later.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch
from datasets import Dataset
from torch.utils.data import DataLoader

from .config import DATA_DIR_ENV, DEFAULT_DEV_FRACTION, DEFAULT_SEED
from .errors import DataError, UsageError, first_line
from .io import loads_json
from .tasks import Task

SPLITS = ("train", "validation")
HOW_TO_GET_DATA = (
    f"pass --data-dir DIR or set {DATA_DIR_ENV} to a folder holding <task>/train.jsonl and <task>/validation.jsonl"
)


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """`--data-dir`, else `$SPARSETUNE_DATA_DIR`, else None (the hub)."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen)
    if not path.is_dir():
        state = "is a file, not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"data dir {path} {state}; {HOW_TO_GET_DATA}, or leave both unset to download from the Hugging Face hub"
        )
    return path


def split_file(task: Task, split: str, data_dir: Path | None) -> Path | None:
    """The local file for a split, or None when the split comes from the hub."""
    if split in task.files:
        return Path(task.files[split])
    if data_dir is not None:
        return data_dir / task.name / f"{split}.jsonl"
    return None


def read_jsonl(path: Path, task: Task) -> list[dict[str, Any]]:
    """Rows of a JSONL file, each checked against the task (file:line on error)."""
    if not path.is_file():
        if path.exists() or path.is_symlink():  # a folder, a FIFO, a dangling or looping link
            raise DataError(f"{path} is not a regular file; a task's data is a JSONL file per split")
        raise DataError(f"{path} does not exist; {HOW_TO_GET_DATA}")
    rows = []
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{number}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    "save the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                row = loads_json(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{number}: not valid JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{number}: expected a JSON object per line")
            problem = task.check_row(row)
            if problem:
                raise DataError(f"{path}:{number}: {problem} (task {task.name})")
            # Labels given by name, or ints among floats, become one Arrow-friendly type.
            row[task.label_field] = task.label_id(row[task.label_field])
            rows.append(row)
    if not rows:
        raise DataError(f"{path} holds no rows")
    return rows


def _load_from_hub(task: Task, split: str) -> Dataset:
    if task.hub is None:
        raise DataError(f"task {task.name} has no hub source; {HOW_TO_GET_DATA}")
    from datasets import load_dataset  # only here: importing it is cheap, downloading is not

    from .hub import hub_reachable, offline_requested

    where = "/".join(task.hub)
    if not offline_requested() and not hub_reachable():  # fail in seconds, not after a minute of retries
        raise DataError(
            f"task {task.name}: no local data, and the Hugging Face hub ({where}) is unreachable; {HOW_TO_GET_DATA} "
            "(or set HF_HUB_OFFLINE=1 to use a copy in the datasets cache)"
        )
    try:
        dataset = load_dataset(*task.hub, split=split)
    except Exception as err:  # noqa: BLE001 - network, auth and missing-config errors alike
        reason = first_line(err)
        raise DataError(
            f"could not load {where} [{split}] from the hub or its cache ({reason}); {HOW_TO_GET_DATA}"
        ) from None
    for number, row in enumerate(dataset):
        problem = task.check_row(row)
        if problem:
            raise DataError(f"{'/'.join(task.hub)} [{split}] row {number}: {problem}")
    return dataset


def load_split(task: Task, split: str, data_dir: str | os.PathLike | None = None) -> Dataset:
    """One official split (`train` or `validation`) of a task, validated."""
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if (
        split in task.files and not Path(task.files[split]).is_file()
    ):  # a custom task's own file: no --data-dir involved
        raise DataError(
            f"task {task.name}: its {split} file {task.files[split]} does not exist; fix {split!r} in the "
            "task's .json file (paths are relative to it)"
        )
    path = split_file(task, split, resolve_data_dir(data_dir))
    if path is None:
        return _load_from_hub(task, split)
    rows = read_jsonl(path, task)
    try:
        return Dataset.from_list(rows)  # every column, as a hub dataset has them (an export's `idx`)
    except (ValueError, TypeError, OverflowError):  # Arrow's ArrowInvalid/ArrowTypeError derive from these
        pass
    try:  # a column of mixed types: the ones the task does not read are left behind
        return Dataset.from_list([{name: row[name] for name in task.fields} for row in rows])
    except (ValueError, TypeError, OverflowError) as err:
        reason = first_line(err)
        raise DataError(
            f"{path}: a column holds values of different types from row to row ({reason}); give each field one type"
        ) from None


@dataclass(frozen=True)
class TaskData:
    """The three sets of the protocol: train (90%), dev (10% of train), test (= validation)."""

    train: Dataset
    dev: Dataset
    test: Dataset


def split_train_dev(train: Dataset, dev_fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out a seeded `dev_fraction` of train for model selection."""
    if not 0 < dev_fraction < 1:  # no flag named: train takes it from the mask, a Python caller from TrainConfig
        raise UsageError(f"the dev fraction must be in (0, 1), got {dev_fraction}")
    held_out = math.ceil(dev_fraction * len(train))  # as datasets rounds a float test_size
    if len(train) - held_out < 1:
        raise DataError(
            f"the train split has {len(train)} row(s): holding out {dev_fraction:g} of it "
            f"for the dev part leaves none to "
            "train on; the protocol needs a train file with at least two rows"
        )
    parts = train.train_test_split(test_size=dev_fraction, seed=seed, shuffle=True)
    return parts["train"], parts["test"]


def load_task_data(
    task: Task, data_dir=None, dev_fraction: float = DEFAULT_DEV_FRACTION, seed: int = DEFAULT_SEED
) -> TaskData:
    train, dev = split_train_dev(load_split(task, "train", data_dir), dev_fraction, seed)
    return TaskData(train=train, dev=dev, test=load_split(task, "validation", data_dir))


class Collator:
    """Rows -> padded tensors, tokenised per batch (dynamic padding, no cache files)."""

    def __init__(self, task: Task, tokenizer, max_length: int):
        self.task, self.tokenizer, self.max_length = task, tokenizer, max_length

    def __call__(self, rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return self.task.encode(rows, self.tokenizer, self.max_length)


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of epoch `epoch`: a pure function of (seed, epoch), so that a
    resumed run replays exactly the batches an uninterrupted one would have seen."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return torch.randperm(size, generator=generator).tolist()


def global_batches(order: Sequence[int], batch_size: int) -> list[list[int]]:
    """Consecutive chunks of `order`: the batches of one optimizer step each (the last
    may be short), whatever the number of processes."""
    order = list(order)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def local_part(batch: list[int], rank: int, processes: int) -> tuple[list[int], float]:
    """This process's rows of a global batch and the weight of its mean loss.

    Every process takes every N-th row; `weight = N · local / global`, so that after DDP
    averages the N gradients the result is the gradient of the global batch's mean
    loss, exactly as one process computes it (weight 1.0 for one process). A process
    left without rows (a last batch shorter than N) runs the batch's first row with
    weight 0: DDP needs every process in every backward, and 0 · g adds nothing.
    """
    rows = batch[rank::processes]
    if not rows:
        return batch[:1], 0.0
    return rows, processes * len(rows) / len(batch) if processes > 1 else 1.0


def make_loader(
    dataset: Dataset,
    task: Task,
    tokenizer,
    batch_size: int,
    max_length: int,
    order: Iterable[int] | None = None,
    batches: Sequence[Sequence[int]] | None = None,
) -> DataLoader:
    """Batches of `dataset` in `order` (default: as stored), or exactly the index lists
    `batches` (a process's shard)."""
    collate = Collator(task, tokenizer, max_length)
    if batches is not None:
        return DataLoader(dataset, batch_sampler=[list(batch) for batch in batches], collate_fn=collate)
    sampler = list(order) if order is not None else range(len(dataset))
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=collate)
