"""apply: base + deltas -> the fine-tuned model, exactly.

    sparsetune apply delta.safetensors -o applied/ && sparsetune eval applied/ --task rte

Composition (several deltas on one base) is task arithmetic on the union of indices:
θ = θ0 + Σ_i (θ_i − θ0). An entry touched by one delta gets exactly that delta's value
(so float32 deltas apply bit for bit); an entry touched by several gets θ0 + Σ_i (θ_i − θ0)
computed in float64 and rounded once. Dense head tensors: the last delta that carries a
tensor of that name provides it. A structural delta (LoRA, adapters) is rebuilt through
its method (`stages.method_delta`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from ..config import ApplyConfig
from ..errors import MismatchError, UsageError, first_line
from ..formats.common import tensor_digest
from ..formats.delta import Delta
from ..io import atomic_path, check_not_an_input, check_replaceable, check_writable, refuse_to_overwrite, writing
from ..models import (
    display_name,
    head_class,
    hub_kwargs,
    load_tokenizer,
    load_with_head,
    new_parameters,
    quiet_transformers,
    resolve_model,
)
from ..progress import ProgressCallback, no_progress
from .method_delta import apply_method, is_structural_delta

if TYPE_CHECKING:
    from torch import nn

    from ..models import LoadedModel


@dataclass
class ApplyResult:
    output: str
    deltas: int
    changed: int  # pretrained entries set (counted once per delta)
    head_from: str | None  # the delta whose head the model carries
    task: str  # recorded by that delta ("" when unknown): what `eval DIR --task` needs
    max_length: int | None  # the run's, when recorded


def _as_deltas(deltas) -> list[tuple[str, Delta]]:
    if isinstance(deltas, (str, os.PathLike, Delta)):
        deltas = [deltas]
    named = []
    for item in deltas:
        if isinstance(item, tuple):  # already (source, Delta)
            named.append(item)
        elif isinstance(item, Delta):
            named.append(("delta", item))
        else:
            named.append((str(item), Delta.load(item)))
    return named


def _check(model_params: dict[str, torch.Tensor], named: list[tuple[str, Delta]], force: bool) -> None:
    """Every delta fits the model; the touched tensors are the base it was made for."""
    for source, delta in named:
        for name, shape in list(delta.shapes.items()) + [(n, tuple(t.shape)) for n, t in delta.head.items()]:
            if name not in model_params:
                raise MismatchError(
                    f"{source}: tensor {name!r} is not in the model; was the delta made for another architecture?"
                )
            if tuple(model_params[name].shape) != tuple(shape):
                raise MismatchError(
                    f"{source}: tensor {name!r} has shape {list(shape)} but the model's is "
                    f"{list(model_params[name].shape)}"
                )
        dense = {name: other for other, carrier in named for name in carrier.head}
        for name in delta.indices:  # a pooler as changed entries here, as head there (another --pooler)
            if name in dense:
                raise MismatchError(
                    f"{source} changes entries of {name!r}, which {dense[name]} carries dense as task head: they were "
                    "made with different --pooler; diff the runs again with the same --pooler"
                )
        if not force:
            delta.check_base(
                source, {name: tensor_digest(model_params[name]) for name in delta.fingerprint if name in model_params}
            )


def _target(delta: Delta, name: str, base: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The value each listed entry (`index`, on base's device) would take from `delta`
    alone. base: (numel,)"""
    value = delta.values[name].to(base.device)
    if delta.values_kind == "absolute":
        return value.to(base.dtype)
    return (base[index].double() + value.double()).to(base.dtype)


@torch.no_grad()
def apply_delta(
    model: nn.Module | LoadedModel,
    deltas: str | os.PathLike | Delta | Iterable[str | os.PathLike | Delta | tuple[str, Delta]],
    force: bool = False,
    progress: ProgressCallback = no_progress,
) -> nn.Module | LoadedModel:
    """Apply one delta (a path or `Delta`) or several, composed, to `model` in memory.

    `model` is the base with the delta's head (an `nn.Module` or a `LoadedModel`); its
    current values are θ0. Several deltas must be applied in one call: composition is
    relative to θ0, and a second call would see the first one's changes as a wrong base.
    Returns the model.
    """
    module = getattr(model, "model", model)
    named = _as_deltas(deltas)
    for source, delta in named:
        if is_structural_delta(delta):
            raise UsageError(
                f"{source} is a {delta.metadata.get('method')} delta: it adds modules to the base, which "
                "apply_delta cannot; rebuild it with `sparsetune apply` (sparsetune.apply(ApplyConfig(...)))"
            )
    params = dict(module.named_parameters())
    _check(params, named, force)
    touched = sorted({name for _, delta in named for name in delta.indices}, key=list(params).index)
    for step, name in enumerate(touched):
        flat = params[name].data.view(-1)  # (numel,) parameters are contiguous
        base = flat.clone()
        users = [delta for _, delta in named if name in delta.indices]
        if len(users) == 1:  # the file's tensors are on the CPU, the model may be on a GPU
            index = users[0].indices[name].to(flat.device)
            flat[index] = _target(users[0], name, base, index)
        else:
            total = torch.zeros(base.numel(), dtype=torch.float64, device=flat.device)
            hits = torch.zeros(base.numel(), dtype=torch.int32, device=flat.device)
            for delta in users:
                index = delta.indices[name].to(flat.device)
                target = _target(delta, name, base, index)
                total[index] += target.double() - base[index].double()
                hits[index] += 1
                flat[index] = target
            several = hits > 1
            flat[several] = (base[several].double() + total[several]).to(base.dtype)
        progress("apply", step + 1, len(touched))
    for _, delta in named:  # later deltas overwrite earlier heads
        for name, tensor in delta.head.items():
            params[name].data.copy_(tensor.to(params[name].dtype))
    return model


def _head_source(named: list[tuple[str, Delta]]) -> tuple[str, Delta] | None:
    carrying = [(source, delta) for source, delta in named if delta.head]
    return carrying[-1] if carrying else None


def base_revision(named: list[tuple[str, Delta]]) -> str | None:
    """The hub commit the deltas' base was at when they were made (None: a local base, or
    deltas from before revisions were recorded). Deltas of one base at two commits do not compose."""
    revisions = {str(delta.metadata["base_revision"]) for _, delta in named if delta.metadata.get("base_revision")}
    if len(revisions) > 1:
        raise UsageError(f"the deltas were made from different commits of their base ({', '.join(sorted(revisions))})")
    return next(iter(revisions), None)


def apply(config: ApplyConfig, progress: ProgressCallback = no_progress) -> ApplyResult:
    """Base + deltas -> a plain transformers model dir (config, tokenizer, model.safetensors)."""
    if not config.deltas:
        raise UsageError("give at least one DELTA file")
    refuse_to_overwrite(config.output, config.force, what="-o")
    check_not_an_input(config.output, [*map(str, config.deltas), config.base])
    check_writable(config.output, "-o", folder=True)
    check_replaceable(config.output, "-o")
    named = _as_deltas(list(config.deltas))
    if any(is_structural_delta(delta) for _, delta in named):  # rebuilt through the method registry
        task, max_length = apply_method(config, named, progress)
        return ApplyResult(str(config.output), 1, 0, named[0][0], task, max_length)
    for index, (source, delta) in enumerate(named):  # composing a delta with itself would double its change
        twin = next((other for other, seen in named[:index] if seen.to_bytes() == delta.to_bytes()), None)
        if twin is not None:
            raise UsageError(f"{source} is the same delta as {twin}; give each delta once")
    if config.merge:
        raise UsageError(
            f"--merge folds a LoRA delta into a plain model; {named[0][0]} is a delta of changed entries, "
            "which apply writes as a plain model anyway: drop --merge"
        )
    bases = {str(delta.metadata.get("base_model", "")) for _, delta in named}
    if config.base is None and len(bases) > 1:
        raise UsageError(f"the deltas name different bases ({', '.join(sorted(bases))}); pass --base")
    base = config.base or next(iter(bases)) or None
    revision = None if config.base else base_revision(named)
    source, shaped = _head_source(named) or named[-1]
    from transformers import AutoConfig

    model_config = dict(shaped.metadata.get("config") or {})
    if "model_type" not in model_config:
        raise MismatchError(f"{source} records no model config; re-create it with sparsetune diff")
    model_type = model_config.pop("model_type")
    try:
        hf_config = AutoConfig.for_model(model_type, **model_config)
    except (ValueError, KeyError) as err:
        raise MismatchError(f"{source}: cannot rebuild its model config ({first_line(err)})") from None
    auto = head_class(str(shaped.metadata.get("architecture", "")), str(shaped.metadata.get("task", "")) or None)
    progress("load", 0, 1)
    where = resolve_model(base)
    model, info = load_with_head(auto, where, "base model", config=hf_config, **hub_kwargs(where, revision))
    progress("load", 1, 1)
    heads = {name for _, delta in named for name in delta.head}
    missing = sorted(new_parameters(model, info) - heads)
    if missing:
        raise MismatchError(
            f"the base {display_name(base)} lacks {missing[0]!r} and no delta carries it; is it the right --base?"
        )
    apply_delta(model, named, force=config.force, progress=progress)
    tokenizer = load_tokenizer(base, revision)
    with atomic_path(config.output) as tmp, writing(config.output):
        with quiet_transformers():  # no "Writing model shards" bar: our own output says it
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
    head = _head_source(named)
    task, max_length = str(shaped.metadata.get("task", "")), shaped.metadata.get("max_length")
    return ApplyResult(
        str(config.output), len(named), sum(d.changed for _, d in named), head[0] if head else None, task, max_length
    )


__all__ = ["ApplyResult", "apply", "apply_delta"]
