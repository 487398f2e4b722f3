"""Structural methods: training adds modules (LoRA's low-rank pairs, bottleneck adapters).

    sparsetune train --method lora --task cb -o out/ && sparsetune diff out/ -o lora.safetensors

The paper compares sparse fine-tuning with LoRA (Hu et al. 2022) and
adapters (Houlsby et al. 2019). For those the result is not a changed θ but θ0 plus the
method's *own* tensors, so what a run keeps and ships is those tensors:

- `own_tensors()` / `load_own()`: the tensors that define the result (added modules, the
  head, and any pretrained tensor the method also trains), under the method's own names;
- `OUT/method/` (`formats.method_dir`): `method.json` (method, options, base model) and
  `adapter_model.safetensors` (those tensors); `eval` and `apply` rebuild the model from
  the base through this registry, so they score exactly what training selected;
- `merged()`: a plain transformers model with the method folded in, where that is possible.

The loop-facing half (`prepare`, `trainable`, ...) is the ordinary `TrainingMethod`.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from ..errors import MismatchError, UsageError
from ..models import LEGACY_POOLER, load_model
from .base import TrainingMethod
from .registry import METHODS, get_method

if TYPE_CHECKING:
    import torch
    from torch import nn


class StructuralMethod(TrainingMethod):
    """A `TrainingMethod` whose result is θ0 + added modules (see the module docstring)."""

    structural: ClassVar[bool] = True
    mergeable: ClassVar[bool] = False

    # -- what defines the result ---------------------------------------------
    def config(self) -> dict[str, Any]:
        """JSON settings that rebuild the structure on a base (`cls(options=config)`)."""
        return dataclasses.asdict(self.options)

    def own_tensors(self) -> dict[str, torch.Tensor]:
        return {name: tensor.detach().clone() for name, tensor in self.state_dict().items()}

    def load_own(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.check_own_names(tensors)
        self.load_state_dict(tensors)

    def check_own_names(self, tensors: Mapping[str, torch.Tensor]) -> None:
        expected = self.own_tensors()
        odd = sorted(set(expected) ^ set(tensors))
        if odd:
            raise MismatchError(
                f"method {self.name!r}: tensor {odd[0]!r} is missing or unexpected; were the weights made "
                "with other options?"
            )
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != tuple(expected[name].shape):
                raise MismatchError(
                    f"method {self.name!r}: tensor {name!r} has shape {list(tensor.shape)}, expected "
                    f"{list(expected[name].shape)}"
                )

    def model(self) -> nn.Module:
        """The trained model as it runs (what training evaluated on the dev part)."""
        raise NotImplementedError

    def merged(self) -> nn.Module:
        raise UsageError(
            f"method {self.name!r} cannot be merged into a plain model (its modules are not linear); apply "
            "without --merge"
        )

    def save_files(self, folder: Path) -> None:
        """`folder/method/`: method.json and the method's own tensors (`formats.method_dir`)."""
        from ..formats.method_dir import METHOD_DIR, save_method_dir

        save_method_dir(self, Path(folder) / METHOD_DIR)

    # -- run.json -------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Added parameters are counted apart from pretrained entries that also train
        (Houlsby's LayerNorms): `fraction` is both together over the pretrained size."""
        head = sum(p.numel() for p in self.head.values())
        eligible = sum(p.numel() for p in self.eligible.values())
        trainable = self.trainable()
        pretrained_ids = {id(p) for p in self.eligible.values()}
        pretrained = sum(p.numel() for p in trainable.values() if id(p) in pretrained_ids)
        total = sum(p.numel() for p in trainable.values())
        added = total - head - pretrained
        return {
            "trainable": total,
            "head": head,
            "head_tensors": self.head_tensors(),
            "added": added,
            "pretrained_trainable": pretrained,
            "eligible": eligible,
            "fraction": (added + pretrained) / eligible if eligible else 0.0,
        }


def check_range(value: float, flag: str, low: float, high: float | None = None, high_open: bool = True) -> None:
    """A method option outside its range is a usage error that names the flag."""
    if not math.isfinite(value):  # nan passes every comparison below
        raise UsageError(f"{flag} must be a finite number, got {value}")
    above = high is not None and (value >= high if high_open else value > high)
    if value < low or above:
        bound = "" if high is None else (f" and below {high}" if high_open else f" and at most {high}")
        raise UsageError(f"{flag} must be at least {low}{bound}, got {value}")


# -- rebuilding a structural result from its own tensors (eval, diff, apply) ----
def is_structural(method_name: str) -> bool:
    return bool(getattr(METHODS.get(method_name), "structural", False))


def build(
    method_name: str,
    options: dict[str, Any],
    base: str | None,
    task,
    tensors,
    fingerprint: bool = False,
    *,
    pooler: str,
    revision: str | None = None,
):
    """Base model + `task` head (with the run's pooler policy) -> the method's structure -> `tensors` loaded.

    Returns the bound method (its `model()` is eval-ready) and, with `fingerprint`, the
    digests of the base's pretrained tensors taken before anything was loaded into them."""
    from ..formats.common import tensor_digest

    method_cls = get_method(method_name)
    if not is_structural(method_name):
        raise UsageError(f"method {method_name!r} keeps no weights of its own; its run dir is a plain model")
    # The head and any fresh module are overwritten below.
    loaded = load_model(base, task, seed=0, pooler=pooler, revision=revision)
    digests = {name: tensor_digest(tensor) for name, tensor in loaded.eligible().items()} if fingerprint else {}
    method = method_cls(None, options)
    method.bind(loaded)
    method.load_own(tensors)
    method.model().eval()
    return method, digests


def read_method_description(path: str | os.PathLike) -> dict[str, Any]:
    """method.json of `path`, checked as a file (`formats.method_dir`) and as a method:
    one with weights of its own, with options it takes."""
    from ..errors import FileFormatError
    from ..formats.method_dir import METHOD_DIR, METHOD_FILE, read_description
    from .base import parse_options

    description = read_description(path)
    file = Path(path) / METHOD_DIR / METHOD_FILE
    if not is_structural(description["method"]):
        raise FileFormatError(
            f"{file}: method {description['method']!r} is not a method with weights of its own (lora, adapter)"
        )
    try:
        parse_options(
            get_method(description["method"]).Options,
            description.get("options") or {},
            description["method"],
            in_file=True,
        )
    except UsageError as err:
        raise FileFormatError(f"{file}: {err}") from None
    return description


def load_method_model(path: str | os.PathLike, task) -> nn.Module:
    """The model a folder with `method/` defines, in eval mode (what `eval` scores), on
    the base it records, at the hub commit it records."""
    from ..formats.common import load_tensors
    from ..formats.method_dir import METHOD_DIR, WEIGHTS_FILE

    description = read_method_description(path)
    tensors = load_tensors(Path(path) / METHOD_DIR / WEIGHTS_FILE)
    method, _ = build(
        description["method"],
        description.get("options") or {},
        description.get("base_model"),
        task,
        tensors,
        pooler=description.get("pooler", LEGACY_POOLER),
        revision=description.get("base_revision"),
    )
    return method.model()
