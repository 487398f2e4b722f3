"""`sparse`: train exactly the entries a mask selects (the paper's method, with a SAM mask).

    sparsetune score --task cb -p 0.005 && sparsetune train --mask mask.safetensors -o out/

The mask comes from any scoring method (SAM, Fisher, random, BitFit, magnitude); the
mechanism is `core.sparse`: frozen θ0 plus trainable `values` at the selected
positions, so optimizer state is k (+ head) entries and everything else stays θ0. The
head (new tensors, and for BERT-style models the pooler under `--pooler head`) trains
densely beside `values`.

A mask is only trained over the eligible set it was scored over: `train --mask` takes
the pooler policy from the mask's metadata, and `check_mask_fits` refuses, in one line,
a mask that selects from a head tensor or leaves out an eligible pooler; `check_mask_base`
one scored on other weights of the same shapes (`-O other_base=true` trains it anyway).

The step computes ∂L/∂values without a dense weight gradient (`core.sparse_delta`).
`--method-option backward=reference` trains through the plain parametrization instead
(dense gradient, then gather): the same numbers to ~1e-7, at the cost of a full step;
kept to check the fast path against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

from ..errors import MismatchError, UsageError
from ..models import is_pooler
from .base import TrainingMethod
from .registry import option, register_method

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..formats.mask import Mask
    from ..models import LoadedModel


@dataclass(frozen=True)
class SparseOptions:
    backward: str = option(
        "sparse", "sparse: ∂L/∂values at the selected entries only; reference: the plain parametrization"
    )
    other_base: bool = option(False, "train a mask scored on other weights of the same shapes (another checkpoint)")


@register_method("sparse")
class SparseMethod(TrainingMethod):
    """Selected entries of eligible tensors + the head (dense: new tensors, and the BERT pooler by default)."""

    title = "Sparse"
    needs_mask = True
    Options = SparseOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from ..core import sparse, sparse_delta

        assert self.mask is not None
        check_mask_fits(self.mask, loaded)
        self.mask.validate_against(self.eligible)
        if not self.options.other_base:
            check_mask_base(self.mask, self.eligible)
        factories = {"sparse": sparse_delta.SparseDelta, "reference": sparse.SelectedValues}
        if self.options.backward not in factories:
            raise UsageError(
                f"--method-option backward must be one of {', '.join(factories)}, got {self.options.backward!r}"
            )
        self.values = sparse.attach(loaded.model, self.mask, self.eligible, factory=factories[self.options.backward])
        for parameter in self.head.values():
            parameter.requires_grad_(True)
        return loaded.model

    def trainable(self) -> dict[str, nn.Parameter]:
        # Keyed by the pretrained tensor's name: checkpoints and weight-decay rules
        # read like the model's own names.
        return {**self.values, **self.head}

    def export(self) -> nn.Module:
        from ..core import sparse

        return sparse.materialise(self.loaded.model)


def check_mask_base(mask: Mask, eligible: Mapping[str, torch.Tensor]) -> None:
    """The eligible tensors are the weights the mask was scored on (`base_sha256`; masks
    from before it was recorded are not checked). Names and shapes alone would let a
    mask of another checkpoint of the architecture through, chosen by other gradients."""
    if not mask.scored_on(eligible):
        source, recorded = mask.metadata.get("model", "another model"), str(mask.metadata["base_sha256"])
        raise MismatchError(
            f"the mask was scored on other weights than this model's (it records {source}, base sha256 "
            f"{recorded[:12]}...): score a mask on this model, or train it anyway with -O other_base=true"
        )


def check_mask_fits(mask: Mask, loaded: LoadedModel) -> None:
    """The mask covers this model's eligible set as far as the head is concerned: no tensor
    of the head, and every eligible pooler tensor (else the pooler would silently freeze)."""
    for name in mask.shapes:
        if name in loaded.head_names:
            if is_pooler(name):
                raise MismatchError(
                    f"the mask covers {name!r}, which is task head with --pooler head (trained densely, not eligible); "
                    "it was made with the pooler eligible: train it with --pooler eligible"
                )
            raise MismatchError(
                f"the mask covers {name!r}, a tensor this model does not have pretrained (its task head); "
                "was it made for another model?"
            )
    for name in loaded.eligible():
        if is_pooler(name) and name not in mask.shapes:
            raise MismatchError(
                f"the mask does not cover {name!r}, which is eligible with --pooler eligible; "
                "it was made with the pooler as task head: train it with --pooler head"
            )
