"""Evaluation: a model's predictions on one split and the task's metrics.

The paper reports the official validation split as the test set
and select models on a held-out part of train; `sparsetune eval` follows that protocol:

    sparsetune eval out/                     # test metrics, recorded in out/run.json
    sparsetune eval out/ --split dev --json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import DEFAULT_DEV_FRACTION, DEFAULT_SEED, EVAL_SPLITS, MAX_LENGTH, EvalConfig
from ..data import load_split, load_task_data, make_loader
from ..errors import FileFormatError, MismatchError, UsageError, first_line
from ..formats.method_dir import has_method_dir
from ..formats.run_record import RUN_FILE, RunRecord, is_run_dir
from ..io import check_writable
from ..methods.structural import load_method_model
from ..progress import ProgressCallback, no_progress
from ..runtime import DEFAULT_PRECISION, Runtime, check_device, check_precision, runtime
from ..tasks import Task, get_task


@torch.no_grad()
def predict(
    model: nn.Module,
    task: Task,
    dataset,
    tokenizer,
    batch_size: int,
    max_length: int,
    progress: ProgressCallback = no_progress,
    stage: str = "eval",
    rt: Runtime | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, labels) over `dataset`, the model in eval mode.

    With a runtime, the batches are sharded over its processes and the logits gathered
    with `gather_for_metrics` (which drops the rows accelerate repeats to even out the
    last batch), so every process gets the predictions of the whole set. Metrics do
    not depend on row order, and each batch holds the same rows as in one process, so
    the metrics equal a one-process run's on the same model.
    """
    was_training = model.training
    model.eval()
    predictions, labels = [], []
    loader = make_loader(dataset, task, tokenizer, batch_size, max_length)
    total = len(loader)
    if rt is not None:
        loader = rt.accelerator.prepare_data_loader(loader)  # shards, places on the device
    device = next(model.parameters()).device
    show = rt is None or rt.is_main
    try:
        for done, batch in enumerate(loader, start=1):
            batch = {key: value.to(device) for key, value in batch.items()}
            gold = batch.pop("labels")
            logits = model(**batch).logits.float()  # [b, labels]
            if rt is not None:
                logits, gold = rt.accelerator.gather_for_metrics((logits, gold))
            predictions.append(task.predictions(logits.cpu().numpy()))
            labels.append(gold.cpu().numpy())
            if show:
                progress(stage, min(done * (rt.processes if rt else 1), total), total)
    finally:
        model.train(was_training)
    return np.concatenate(predictions), np.concatenate(labels)


def metrics_on(
    model, task, dataset, tokenizer, batch_size, max_length, progress=no_progress, stage="eval", rt=None
) -> dict[str, float]:
    predictions, labels = predict(model, task, dataset, tokenizer, batch_size, max_length, progress, stage, rt)
    return {key: float(value) for key, value in task.compute_metrics(predictions, labels).items()}


def _split_data(task: Task, split: str, data_dir, dev_fraction: float, seed: int):
    if split not in EVAL_SPLITS:
        raise UsageError(f"--split must be one of {', '.join(EVAL_SPLITS)}, got {split!r}")
    if split == "validation":
        return load_split(task, "validation", data_dir)
    parts = load_task_data(task, data_dir, dev_fraction=dev_fraction, seed=seed)
    return parts.dev if split == "dev" else parts.train


def _check_head(target: Path | str, task: Task, revision: str | None = None) -> None:
    """Refuse a model whose saved head is not this task's (before transformers would)."""
    from transformers import AutoConfig

    from ..models import hub_kwargs

    try:
        model_config = AutoConfig.from_pretrained(str(target), **hub_kwargs(str(target), revision))
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{target} is not a model dir transformers can read ({first_line(err)})") from None
    wanted = "ForMultipleChoice" if task.head == "multiple_choice" else "ForSequenceClassification"
    architectures = model_config.architectures or []
    has_head = any(name.endswith(wanted) for name in architectures)
    if has_head and task.head != "multiple_choice" and model_config.num_labels != task.num_labels:
        has_head = False
    if not has_head:
        found = ", ".join(architectures) or "no head"
        labels = "" if task.head == "multiple_choice" else f" with {task.num_labels} output(s)"
        raise MismatchError(
            f"{target} has no trained {task.name} head (found {found}; expected *{wanted}{labels}); "
            "train it first with `sparsetune train`"
        )
    _check_label_order(target, model_config, task)


def _label_key(name: str) -> str:
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _check_label_order(target: Path, model_config, task: Task) -> None:
    """Refuse a head whose named classes are the task's in another order (an MNLI head on
    cb, say): its logits would be scored against the wrong label ids, silently. Default
    names (LABEL_0, ...) and names that are not the task's say nothing and pass."""
    if task.labels is None or task.head == "multiple_choice":
        return
    id2label = getattr(model_config, "id2label", None) or {}
    try:
        names = [str(id2label[i]) for i in range(task.num_labels)]
    except KeyError:
        return
    ours = [_label_key(name) for name in task.labels]
    theirs = [_label_key(name) for name in names]
    if theirs != ours and sorted(theirs) == sorted(ours):
        raise MismatchError(
            f"{target}: its head's classes are {', '.join(names)} (config.json id2label), {task.name}'s are "
            f"{', '.join(task.labels)}: the same labels in another order would be scored against the wrong "
            "ids; reorder the head's rows (and id2label) or train it with `sparsetune train`"
        )


def evaluate(config: EvalConfig, progress: ProgressCallback = no_progress) -> dict[str, Any]:
    """Metrics of a run dir or a fine-tuned model (a folder, or a hub id) on one split.

    Returns {"task", "split", "examples", "metrics"}; for a run dir with `record`, the
    metrics are also stored in run.json under the split's name.
    """
    from ..hub import is_local
    from ..models import check_max_length, load_model, load_tokenizer

    target = Path(config.target)
    hub_id = not is_local(config.target)  # a model on the hub (or in its cache): no path, no folder
    check_device(config.device)
    if config.precision is not None:
        check_precision(config.precision)
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.max_length is not None and config.max_length < 1:
        raise UsageError(f"--max-length must be at least 1, got {config.max_length}")
    if not target.is_dir() and not hub_id:
        raise FileFormatError(
            f"{target} is not a directory; pass a run dir (train -o OUT), a fine-tuned model dir or a hub id"
        )
    if config.revision and not hub_id:
        raise UsageError(f"--revision {config.revision}: {target} is a local folder; a revision names a hub commit")
    source = config.target if hub_id else target
    record = RunRecord.load(target) if not hub_id and is_run_dir(target) else None
    if record is None and config.task is None:
        raise UsageError(f"{target} has no run.json; pass --task to say which task its head was trained for")
    task = get_task(config.task or record.task)
    if record is not None and config.task and task.name != get_task(record.task).name:
        raise UsageError(f"--task {config.task}: {target} was trained for {record.task}; drop --task")
    if record is not None and config.record:
        check_writable(target / RUN_FILE)  # the metrics are recorded there: fail now, not after the pass
    hyper = record.hyperparameters if record else {}
    max_length = config.max_length or hyper.get("max_length") or MAX_LENGTH
    precision = config.precision or hyper.get("precision") or DEFAULT_PRECISION  # evaluate as trained
    rt = runtime(config.device, precision)
    dataset = _split_data(
        task,
        config.split,
        config.data_dir,
        hyper.get("dev_fraction", DEFAULT_DEV_FRACTION),
        hyper.get("split_seed", DEFAULT_SEED),
    )
    _check_head(source, task, config.revision)
    if not hub_id and has_method_dir(target):  # LoRA, adapters: base + the method's own weights, as trained
        model = load_method_model(target, task)
    else:
        loaded = load_model(source, task, revision=config.revision)
        if loaded.new_parameters:
            first = sorted(loaded.new_parameters)[0]
            raise MismatchError(
                f"{target} has no trained {task.name} head ({first} is missing or has another shape); "
                f"train it first with `sparsetune train`"
            )
        model = loaded.model
    check_max_length(model, max_length)
    model = rt.accelerator.prepare_model(model, evaluation_mode=True)  # device + autocast, no DDP
    tokenizer = load_tokenizer(source, config.revision)
    metrics = metrics_on(model, task, dataset, tokenizer, config.batch_size, max_length, progress, rt=rt)
    if record is not None and config.record and rt.is_main:
        fresh = RunRecord.load(target)  # re-read: another eval may have recorded a split meanwhile
        fresh.metrics[config.split] = metrics
        fresh.save(target)
    rt.barrier()
    return {
        "task": task.name,
        "split": config.split,
        "examples": len(dataset),
        "precision": precision,
        "metrics": metrics,
    }
