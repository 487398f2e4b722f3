"""The one training loop every method plugs into.

    sparsetune train --mask mask.safetensors -o out/      # exactly sparse (method `sparse`)
    sparsetune train --method full --task cb -o out/      # the FullTuning baseline

AdamW with linear warm-up and decay (transformers' schedule), gradient clipping,
evaluation on the held-out dev part every `eval_every` steps and at each epoch end,
and the best state by the task's `score` restored at the end. Built on accelerate
(`sparsetune.runtime`), so devices, mixed precision and multi-process DDP are not
home-made.

Resume is bitwise on CPU because nothing a step depends on is implicit:
- the data order of epoch e is `data.epoch_order(seed, e)`, so a resumed run skips
  exactly the batches already consumed;
- dropout is reseeded from (seed, step) before every step, so neither evaluation nor
  data-loader construction nor a restart shifts the random stream;
- checkpoints hold the trainable state, AdamW's moments, the scheduler, the position
  and fp16's loss scale; everything else is re-read from the base model.
Ctrl-C (or SIGTERM) is deferred to the end of the current step, which is then
checkpointed; a second one aborts at once and keeps the last checkpoint. Under N
processes a stop seen by any process stops all of them at the same step.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from ...config import TrainConfig
from ...data import epoch_order, global_batches, local_part, make_loader
from ...errors import (
    FileFormatError,
    Terminated,
    TrainingError,
    UsageError,
    first_line,
    interruption,
    training_stopped,
)
from ...formats.checkpoint import Checkpoint, has_checkpoint, load_checkpoint, save_checkpoint
from ...formats.log import LOG_FILE, LogWriter
from ...formats.run_record import RunRecord
from ...progress import ProgressCallback, no_progress
from ...runtime import check_tracker, resolve_device, runtime
from ..evaluate import metrics_on
from .outputs import claim_output, discard_output, write_outputs
from .setup import RunSetup, prepare_run

TRACKER_DIR = "logs"  # OUT/logs/sparsetune/: TensorBoard event files (--report-to tensorboard)


def _step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Dropout's seed for one step of one process (rank 0 draws as a lone process)."""
    return (seed * 1_000_003 + step + rank * 7_919_000_009) % (2**63 - 1)


@contextmanager
def _deferred_sigint():
    """The first Ctrl-C (or SIGTERM) sets a flag the loop checks between steps; a second
    signal raises at once. SIGTERM counts because launchers (torchrun, accelerate,
    schedulers) pass a Ctrl-C on to their workers as SIGTERM."""
    flag = {"stop": False}
    signals = (signal.SIGINT, signal.SIGTERM)
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield flag
        return

    def handler(signum, frame):
        if flag["stop"]:
            raise _interrupt_for(signum)
        flag["stop"], flag["signal"] = True, signum

    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield flag
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def _interrupt_for(signum: int | None) -> KeyboardInterrupt:
    """What a deferred signal raises: `Terminated` for SIGTERM (exit 143), else Ctrl-C's."""
    return Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _groups(numbers: dict[str, Any]) -> dict[str, dict[str, float]]:
    """{"dev": {...}} stays a group; loose numbers are the "train" group."""
    groups: dict[str, dict[str, float]] = {}
    for key, value in numbers.items():
        if isinstance(value, dict):
            groups[key] = value
        else:
            groups.setdefault("train", {})[key] = value
    return groups


def _scalars(hyper: dict[str, Any]) -> dict[str, Any]:
    """Hyperparameters as trackers accept them (TensorBoard's hparams: numbers and strings)."""
    return {
        key: value if isinstance(value, (int, float, str, bool)) else json.dumps(value) for key, value in hyper.items()
    }


def _optimizer(setup: RunSetup) -> tuple[torch.optim.Optimizer, list[str]]:
    """AdamW over the method's trainable tensors; no decay on biases/LayerNorm."""
    trainable = setup.method.trainable()
    decay = [name for name in trainable if not setup.method.no_decay(name)]
    plain = [name for name in trainable if setup.method.no_decay(name)]
    groups = [
        {"params": [trainable[n] for n in decay], "weight_decay": setup.hyper.weight_decay},
        {"params": [trainable[n] for n in plain], "weight_decay": 0.0},
    ]
    groups = [group for group in groups if group["params"]]
    return torch.optim.AdamW(groups, lr=setup.hyper.lr), decay + plain


def train(config: TrainConfig, progress: ProgressCallback = no_progress) -> RunRecord:
    """Fine-tune per `config`, write OUT/, and return its run record.

    Under a multi-process launch every process runs this function: each takes its
    share of every global batch (`--batch-size` stays the examples per optimizer step),
    DDP averages the gradients, the schedule counts optimizer steps, dev evaluation is
    sharded and gathered, and only the main process writes files or reports progress.
    A run dir is locked while it trains (`run_lock`); a new run that fails before its
    first checkpoint leaves no folder behind.
    """
    started = time.time()
    resolve_device(config.device)  # an unusable device or tracker fails before anything loads
    check_tracker(config.report_to)
    setup = prepare_run(config)  # every check, then loading; nothing written yet
    hyper, out = setup.hyper, setup.output
    rt = runtime(config.device, hyper.precision, config.report_to, out / TRACKER_DIR)
    rt.agree("train", asdict(config))
    main = rt.is_main
    progress = progress if main else no_progress
    lock = claim_output(setup) if main else None  # OUT is this process's until the run ends
    try:
        return _train(config, setup, rt, progress, started)
    except BaseException:
        if main:  # before the first checkpoint OUT holds nothing to resume: leave no folder that blocks a rerun
            discard_output(setup)
        raise
    finally:
        if lock is not None:
            lock.release()


def _steps_on_cpu(optimizer: torch.optim.Optimizer) -> None:
    """Put AdamW's restored `step` counters back on the CPU, where a fresh run keeps them:
    accelerate moves a resumed optimizer's whole state to the GPU, and AdamW then reads
    each counter back (a device sync) twice per tensor per step."""
    for state in optimizer.state.values():
        if torch.is_tensor(state.get("step")):
            state["step"] = state["step"].cpu()


def _restore(setup: RunSetup, optimizer, scheduler, scaler, total: int) -> tuple[int, dict, dict, float]:
    """--resume: the checkpoint's state into the method, optimizer, scheduler and fp16's
    loss scaler; returns (step, best state, best info, seconds the earlier attempts trained)."""
    out = setup.output
    checkpoint = load_checkpoint(out)
    try:
        setup.method.load_state_dict(checkpoint.model)
        optimizer.load_state_dict(checkpoint.optimizer)
        scheduler.load_state_dict(checkpoint.scheduler)
        if scaler is not None and "loss_scale" in checkpoint.info:  # checkpoints from before: the scale starts over
            scaler.load_state_dict(checkpoint.info["loss_scale"])
    except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as err:
        raise FileFormatError(
            f"{out}/checkpoint does not fit this run ({first_line(err)}); it was edited, or written by "
            "another version: start over with --force"
        ) from None
    if checkpoint.step > total:
        raise FileFormatError(
            f"{out}/checkpoint is at step {checkpoint.step}, past the run's {total} steps; it was edited: "
            "start over with --force"
        )
    earlier = checkpoint.info.get("seconds", 0.0)  # absent in checkpoints written before it was kept
    return checkpoint.step, checkpoint.best, checkpoint.info["best"], earlier


def _stopped_message(interrupt, in_update: bool, saved: bool, step: int, last_saved: int, total: int, out) -> str:
    """What Ctrl-C or SIGTERM left behind, and the command that goes on from there."""
    word, _ = interruption(interrupt)
    if in_update and not saved:  # mid-step with nothing saved yet: OUT is removed (train), nothing to resume
        return (
            f"{word} during step {step + 1}, before the first checkpoint; nothing was kept: "
            "rerun the same command to start over"
        )
    if in_update:  # mid-step: the state is half-updated, the last checkpoint stays
        return f"{word} during step {step + 1}; resume from step {last_saved} with --resume -o {out}"
    if step == 0 and not saved:
        return f"{word} before the first step; nothing was kept: rerun the same command"
    return f"{word} at step {step}/{total}; checkpoint written, continue with: sparsetune train --resume -o {out}"


def tracker_settings(report_to: str, out, environ=os.environ) -> tuple[str, dict]:
    """accelerate's (project name, init kwargs) for the tracker. wandb as the HF Trainer
    does it: the project from WANDB_PROJECT, each run named after its OUT folder (else
    every run is one unnamed line in one project); tensorboard writes OUT/logs/sparsetune/."""
    if report_to == "wandb":
        return environ.get("WANDB_PROJECT") or "sparsetune", {"wandb": {"name": Path(out).name}}
    return "sparsetune", {}


def _train(config: TrainConfig, setup: RunSetup, rt, progress: ProgressCallback, started: float) -> RunRecord:
    """The loop of `train`, once OUT is claimed."""
    from transformers import get_linear_schedule_with_warmup

    hyper, out, main = setup.hyper, setup.output, rt.is_main
    rt.barrier()  # OUT exists for every process
    if rt.processes > 1 and hyper.batch_size < rt.processes:
        raise UsageError(
            f"--batch-size {hyper.batch_size} is smaller than the {rt.processes} processes; each needs at "
            "least one example per step"
        )
    tracking = config.report_to != "none"
    if tracking:  # accelerate logs from the main process only
        project, init_kwargs = tracker_settings(config.report_to, out)
        rt.accelerator.init_trackers(project, config=_scalars(hyper.as_record()), init_kwargs=init_kwargs)
    optimizer, names = _optimizer(setup)
    steps_per_epoch = math.ceil(len(setup.data.train) / hyper.batch_size)
    total = hyper.max_steps or hyper.epochs * steps_per_epoch
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(hyper.warmup_ratio * total), total)

    scaler = rt.accelerator.scaler  # fp16's loss scale; None otherwise
    step, best, best_info = 0, setup.method.state_dict(), {"score": -math.inf, "step": 0}
    earlier = 0.0  # seconds spent training by the attempts before a --resume, up to their last checkpoint
    if config.resume:
        step, best, best_info, earlier = _restore(setup, optimizer, scheduler, scaler, total)
    rt.barrier()  # every process has read the checkpoint before the main one replaces it
    # The scheduler is not prepared: accelerate would step it once per process. The model
    # goes first: accelerate moves a restored optimizer state to where the parameters are then.
    model, optimizer = rt.accelerator.prepare(setup.model, optimizer)
    _steps_on_cpu(optimizer.optimizer)
    log = LogWriter(out / LOG_FILE, keep_until=step if config.resume else None) if main else None
    last_saved = step
    task, tokenizer = setup.task, setup.tokenizer

    def write_log(**record: Any) -> None:
        if log is not None:
            log.write(**record)
        if tracking:
            numbers = (
                {"dev": record["dev"]} if "dev" in record else {key: record[key] for key in ("loss", "lr", "epoch")}
            )
            rt.accelerator.log(
                {
                    f"{group}/{key}": value
                    for group, values in _groups(numbers).items()
                    for key, value in values.items()
                },
                step=record["step"],
            )

    def checkpoint_now() -> None:
        nonlocal last_saved
        if main:
            state = Checkpoint(
                step=step,
                model=setup.method.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                best=best,
                info={
                    "epoch": step / steps_per_epoch,
                    "best": best_info,
                    "hyperparameters": hyper.as_record(),
                    "seconds": earlier + time.time() - started,
                    # The mask its sparse tensors index: a resume checks OUT's copy against it.
                    **({"mask_sha256": setup.mask_sha256} if setup.mask_sha256 else {}),
                    # fp16's loss scale: started over, a resume would skip other steps as overflows.
                    **({"loss_scale": scaler.state_dict()} if scaler is not None else {}),
                },
                rng=torch.get_rng_state(),
            )
            save_checkpoint(out, state, names)
        last_saved = step

    def evaluate_dev() -> float:
        nonlocal best, best_info
        metrics = metrics_on(
            rt.accelerator.unwrap_model(model),
            task,
            setup.data.dev,
            tokenizer,
            max(32, hyper.batch_size),
            hyper.max_length,
            rt=rt,
        )
        write_log(step=step, epoch=step / steps_per_epoch, dev=metrics)
        if metrics["score"] > best_info["score"]:
            best, best_info = (
                setup.method.state_dict(),
                {"score": metrics["score"], "step": step, "epoch": step / steps_per_epoch, "dev": metrics},
            )
        return metrics["score"]

    model.train()
    in_update = False
    try:
        with _deferred_sigint() as sigint:
            while step < total:
                epoch, offset = divmod(step, steps_per_epoch)
                order = epoch_order(len(setup.data.train), hyper.seed, epoch)
                parts = [
                    local_part(batch, rt.rank, rt.processes)
                    for batch in global_batches(order, hyper.batch_size)[offset:]
                ]
                loader = make_loader(
                    setup.data.train,
                    task,
                    tokenizer,
                    hyper.batch_size,
                    hyper.max_length,
                    batches=[rows for rows, _ in parts],
                )
                for position, (batch, (_, weight)) in enumerate(zip(loader, parts), start=offset + 1):
                    in_update = True
                    torch.manual_seed(_step_seed(hyper.seed, step, rt.rank))
                    lr = scheduler.get_last_lr()[0]  # the rate this step uses
                    loss = model(**rt.send(batch)).loss
                    reported = loss.detach()
                    if rt.processes > 1:  # this process's share of the global batch (see data.local_part)
                        loss = loss * weight
                        reported = rt.sum(reported * weight) / rt.processes  # the global batch's mean loss
                    extra = setup.method.regulariser()
                    if extra is not None:
                        loss = loss + extra
                        reported = reported + extra.detach()
                    if not torch.isfinite(loss):
                        kept = config.resume or has_checkpoint(out)  # else OUT goes with the error (a new run)
                        raise TrainingError(
                            f"the training loss became {loss.item()} at step {step + 1}; stopped. "
                            + (
                                f"The last good checkpoint (step {last_saved}) is in {out}/checkpoint; lower --lr "
                                "and retrain with --force"
                                if kept
                                else "Nothing was kept (no checkpoint yet); lower --lr and rerun"
                            )
                        )
                    rt.accelerator.backward(loss)
                    rt.accelerator.clip_grad_norm_(list(setup.method.trainable().values()), hyper.max_grad_norm)
                    optimizer.step()
                    if not rt.accelerator.optimizer_step_was_skipped:  # fp16: an overflowing step changes nothing
                        scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    step += 1
                    info = setup.method.after_step(step) or {}
                    in_update = False
                    shown: dict[str, float] = {"epoch": step / steps_per_epoch, "loss": reported.item(), "lr": lr}
                    write_log(step=step, epoch=shown["epoch"], loss=shown["loss"], lr=lr, **info)
                    due = hyper.eval_every and step % hyper.eval_every == 0
                    if due or position == steps_per_epoch or step == total:
                        shown["dev"] = evaluate_dev()
                        checkpoint_now()
                    progress("train", step, total, **shown)
                    if rt.any(sigint["stop"]):  # Ctrl-C on any process stops all at this step
                        raise _interrupt_for(sigint.get("signal"))
                    if step >= total:
                        break
    except KeyboardInterrupt as interrupt:
        saved = config.resume or has_checkpoint(out)
        if not in_update and (step > 0 or saved):  # between steps: the state is whole, keep it
            if last_saved != step:
                checkpoint_now()
            rt.barrier()
        message = _stopped_message(interrupt, in_update, saved, step, last_saved, total, out)
        raise training_stopped(interrupt, message) from None
    finally:
        if log is not None:
            log.close()
        if tracking:
            rt.accelerator.end_training()
    setup.method.load_state_dict(best)
    record = write_outputs(setup, best_info, steps=step, seconds=earlier + time.time() - started, write=main)
    rt.barrier()  # no process returns before OUT is complete
    return record
