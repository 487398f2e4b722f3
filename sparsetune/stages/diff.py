"""diff: ship only what fine-tuning changed.

A p-sparse fine-tune differs from θ0 in p·m entries; `diff` finds them by bitwise
comparison with the base and writes them as a delta file, which `apply`
(`sparsetune.stages.apply`) puts back:

    sparsetune diff out/ -o delta.safetensors && sparsetune apply delta.safetensors -o applied/

The head travels dense: the new tensors and, under the pooler policy "head" (the
default; `models.head_names`), the BERT pooler the classifier reads, which a run trains
densely, so listing its every entry as index + value would cost twice the bytes for
nothing. A run's policy comes from its run.json (runs from before it: "eligible").
A structural run (LoRA, adapters) ships its own tensors instead (`stages.method_delta`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..config import MASK_FILE, DiffConfig
from ..core.tensors import differs
from ..errors import FileFormatError, MismatchError, UsageError, first_line
from ..formats.common import tensor_digest
from ..formats.delta import VALUE_DTYPES, Delta, portable_config
from ..formats.mask import Mask, budget, check_fraction
from ..formats.method_dir import has_method_dir
from ..formats.run_record import RunRecord, is_run_dir
from ..io import atomic_path, check_not_an_input, check_writable, refuse_to_overwrite
from ..models import (
    DEFAULT_POOLER,
    LEGACY_POOLER,
    check_pooler,
    display_name,
    head_class,
    head_names,
    hub_kwargs,
    load_with_head,
    new_parameters,
    resolve_model,
)
from ..progress import ProgressCallback, no_progress
from .method_delta import check_run_task, diff_method


@dataclass
class DiffResult:
    delta: Delta
    data: bytes  # the file's bytes: written to `output`, or to stdout by the CLI
    output: str | None


def _check_named_base(run: Path, record: RunRecord, base: str, theta0: dict[str, torch.Tensor]) -> None:
    """`--base` must be the weights a sparse run trained from: its mask records their
    digest (`base_sha256`). Another base of the same shapes would give a delta of nearly
    every entry, silently, that `apply` then accepts on that other base."""
    from ..methods import get_method
    from ..methods.base import parse_options

    mask_file = run / MASK_FILE
    recorded = record.hyperparameters.get("method_options") or {}
    options = parse_options(get_method(record.method).Options, recorded, record.method, from_user=False)
    if not mask_file.is_file() or getattr(options, "other_base", False):
        return  # not a sparse run, or one trained on purpose from other weights than its mask's
    mask = Mask.load(mask_file)
    if any(name not in theta0 for name in mask.shapes):
        return  # another architecture: it fails below, by name
    if not mask.scored_on({name: theta0[name] for name in mask.shapes}):
        raise MismatchError(
            f"--base {base}: {run} was trained from other weights (its mask was scored on "
            f"{mask.metadata.get('model', 'another model')}); drop --base to diff against the run's own base "
            f"{record.base_model}"
        )


# -- diff -----------------------------------------------------------------------
def diff(config: DiffConfig, progress: ProgressCallback = no_progress) -> DiffResult:
    """The entries of a fine-tuned model that differ from its base, as a delta file.

    Reads base and task from `run.json` when the folder is a run; a plain model dir
    takes `config.base` (default: the embedded MiniLM) and its head from its config; a
    hub id (someone's fine-tune, offline first) needs `config.base`.
    """
    if config.values not in VALUE_DTYPES:
        raise UsageError(f"--values must be one of {', '.join(VALUE_DTYPES)}, got {config.values!r}")
    if config.top_p is not None:
        check_fraction(config.top_p, "--top-p")
    if config.output is not None:  # None: the delta goes to stdout; "" names no file
        refuse_to_overwrite(config.output, config.force, what="-o")
        check_not_an_input(config.output, [config.run, config.base])
        check_writable(config.output, "-o")
    from ..hub import is_local

    run = Path(config.run)
    hub_id = not is_local(config.run)  # someone's fine-tune on the hub (or in its cache): no path, no folder
    if not run.is_dir() and not hub_id:
        raise FileFormatError(
            f"{run} is not a folder; pass a run dir (sparsetune train -o), a saved model dir or a hub id"
        )
    if hub_id and not config.base:
        raise UsageError(f"{config.run} is a hub model: pass --base, the model it was fine-tuned from")
    if not hub_id and has_method_dir(run):  # LoRA, adapters: the method's own tensors (stages.method_delta)
        return _written(config, diff_method(config, progress))
    if not hub_id and not (run / "config.json").is_file():
        raise FileFormatError(
            f"{run} is not a model dir (no config.json); pass a run dir (sparsetune train -o) or a saved model"
        )
    base, task, max_length, pooler, revision = config.base, config.task, None, DEFAULT_POOLER, None
    tuned_source, tuned_where = (config.run, hub_kwargs(config.run)) if hub_id else (str(run), {})
    record = None
    if not hub_id and is_run_dir(run):
        record = RunRecord.load(run)
        check_run_task(config.task, record.task, run)
        revision = None if base else record.base_revision  # --base names another model: its own default
        base, task = base or record.base_model, task or record.task
        max_length = record.hyperparameters.get("max_length")
        pooler = record.hyperparameters.get("pooler", LEGACY_POOLER)
    pooler = check_pooler(config.pooler) if config.pooler is not None else pooler

    from transformers import AutoConfig

    try:
        architecture = (AutoConfig.from_pretrained(tuned_source, **tuned_where).architectures or [None])[0]
    except (OSError, ValueError) as err:
        raise FileFormatError(f"{run}/config.json is not a transformers config ({first_line(err)})") from None
    auto = head_class(architecture, task)
    progress("load", 0, 2)
    tuned, _ = load_with_head(auto, tuned_source, "fine-tuned model", **tuned_where)
    progress("load", 1, 2)
    source = resolve_model(base)
    pretrained, info = load_with_head(auto, source, "base model", config=tuned.config, **hub_kwargs(source, revision))
    progress("load", 2, 2)
    head_set = head_names(pretrained, new_parameters(pretrained, info), pooler)  # travels dense
    theta, theta0 = dict(tuned.named_parameters()), dict(pretrained.named_parameters())
    if config.base and record is not None:
        _check_named_base(run, record, config.base, theta0)
    if set(theta) != set(theta0):
        name = sorted(set(theta) ^ set(theta0))[0]
        raise MismatchError(
            f"parameter {name!r} is in only one of {run} and the base {display_name(base)}; is it the right --base?"
        )

    changed: dict[str, torch.Tensor] = {}  # name -> (numel,) bool
    for step, (name, before) in enumerate(theta0.items()):
        progress("compare", step + 1, len(theta0))
        after = theta[name]
        if name in head_set:
            continue
        if after.shape != before.shape or after.dtype != before.dtype:
            raise MismatchError(
                f"parameter {name!r} is {after.dtype}{list(after.shape)} in {run} but "
                f"{before.dtype}{list(before.shape)} "
                f"in the base {display_name(base)}; is it the right --base?"
            )
        changed[name] = differs(after, before).reshape(-1)

    positions = {name: torch.nonzero(flags).flatten() for name, flags in changed.items()}
    if config.top_p is not None:
        positions = _largest_changes(theta, theta0, changed, config.top_p)

    dtype = VALUE_DTYPES[config.values]
    indices, values, shapes = {}, {}, {}
    for name, index in positions.items():
        if not index.numel():
            continue
        after, before = theta[name].detach().reshape(-1)[index], theta0[name].detach().reshape(-1)[index]
        indices[name], shapes[name] = index, tuple(theta[name].shape)
        # float32: the values themselves (bit-exact); half types: the rounded difference.
        values[name] = after.to(dtype) if config.values == "float32" else (after.double() - before.double()).to(dtype)
    # Every pretrained tensor the model takes from the base, touched or not: `apply` checks
    # the whole base, not only what the delta changes.
    fingerprint = {name: tensor_digest(theta0[name]) for name in changed}
    head = {name: theta[name].detach().clone() for name in theta0 if name in head_set}
    metadata = {
        "base_model": display_name(base),
        "task": str(task or ""),
        "architecture": architecture or type(tuned).__name__,
        "config": portable_config(tuned.config),
        "fingerprint": fingerprint,
        "untouched": {name: list(theta0[name].shape) for name in changed if name not in indices},
        "eligible": sum(tensor.numel() for name, tensor in theta0.items() if name not in head_set),
        "pooler": pooler,
        **({"base_revision": revision} if revision else {}),
    }
    if config.top_p is not None:
        metadata["top_p"] = config.top_p
    if max_length:
        metadata["max_length"] = int(max_length)  # what the run trained and evaluated with
    return _written(config, Delta(indices, values, shapes, head, config.values, metadata))


def _written(config: DiffConfig, delta: Delta) -> DiffResult:
    """The delta's bytes, written to `config.output` when one is given."""
    data = delta.to_bytes()
    if config.output:
        with atomic_path(config.output) as tmp:
            tmp.write_bytes(data)
    return DiffResult(delta, data, config.output)


def _largest_changes(theta, theta0, changed, p: float) -> dict[str, torch.Tensor]:
    """Positions of the ⌊p·m⌋ largest |θ − θ0| over all eligible entries (changed ones only)."""
    eligible = sum(flags.numel() for flags in changed.values())
    if budget(eligible, p) < 1:
        raise UsageError(f"--top-p {p} keeps no entry of {eligible:,}; pass a larger --top-p")
    scores = {}
    for name, flags in changed.items():
        size = (theta[name].detach().double() - theta0[name].detach().double()).abs().reshape(-1)
        size = torch.nan_to_num(size, nan=float("inf"))  # a NaN weight is the largest change of all
        scores[name] = torch.where(flags, size, torch.full_like(size, -1.0))
    kept = Mask.from_scores(scores, p).indices
    return {name: index[changed[name][index]] for name, index in kept.items()}


def delta_summary(delta: Delta, size: int) -> dict[str, float]:
    """The figures `diff` reports: entries, bytes, bytes per changed entry."""
    return {
        "changed": delta.changed,
        "eligible": int(delta.metadata.get("eligible", 0)),
        "head_entries": delta.head_entries,
        "bytes": size,
        "bytes_per_changed_entry": size / delta.changed if delta.changed else None,  # none changed
    }


__all__ = ["DiffResult", "delta_summary", "diff"]
