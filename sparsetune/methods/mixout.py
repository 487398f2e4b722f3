"""`mixout`: dropout toward the pretrained weights (Lee et al. 2020, arXiv 1909.11299), a
baseline of the paper's Table 1.

    sparsetune train --method mixout --mixout-p 0.9 --task cb -o mixout/

Every parameter trains (as in full tuning), but in each training forward pass the weight
W of every linear layer is replaced by

    W̃ = (M ⊙ W + (1 − M) ⊙ u − p·u) / (1 − p),    M ~ Bernoulli(1 − p),

u its value at the start (θ0), so E[W̃] = W and each entry is swapped for u with
probability p. As in the authors' code (github.com/bloodwass/mixout), one draw of M per
input unit is shared by all output rows (`--method-option mixout-unit=neuron`; `entry`
draws every entry), every pretrained `nn.Linear` mixes, and the model's dropout is set to
0 (`mixout-keep-dropout=true` keeps it). At evaluation W̃ = W.

The task head (the new classifier and, under `--pooler head`, the BERT pooler) is not
mixed: every method trains the same head the same plain dense way, so the methods differ
only in what they do to the eligible tensors. The authors' code also mixes the new
output layer toward its random initialisation; `-O mixout_head=true` does that (for
every head tensor, the pooler toward its θ0). M comes from torch's global generator, which the training loop
reseeds per step, so runs and resumed runs are bitwise reproducible.

Built on `torch.nn.utils.parametrize`; `export()` removes the parametrizations, leaving a
plain model whose weights are the trained W.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import UsageError
from .base import TrainingMethod
from .registry import option, register_method
from .structural import check_range

if TYPE_CHECKING:
    from torch import nn

    from ..models import LoadedModel

ORIGINAL = ".parametrizations.weight.original"


@dataclasses.dataclass(frozen=True)
class MixoutOptions:
    mixout_p: float = option(  # Lee et al.'s setting for BERT-large on GLUE, and their example's
        0.9, "probability of swapping a weight for its θ0 value", "--mixout-p"
    )
    mixout_unit: str = option("neuron", "neuron: one draw per input unit (the authors' code); entry: one per weight")
    mixout_keep_dropout: bool = option(False, "keep the model's dropout (Mixout replaces it by default)")
    mixout_head: bool = option(False, "also mix the head's linear layers toward their start (the authors' code)")

    def check(self, name) -> None:
        check_range(self.mixout_p, name("mixout_p"), 0.0, 1.0)
        if self.mixout_unit not in ("neuron", "entry"):
            raise UsageError(f"{name('mixout_unit')} must be neuron or entry, got {self.mixout_unit!r}")


@register_method("mixout")
class MixoutMethod(TrainingMethod):
    """Full fine-tuning with every pretrained linear weight mixed toward its starting value."""

    title = "Mixout"
    Options = MixoutOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from torch import nn
        from torch.nn.utils import parametrize

        from ..core.mixout import MixoutToTarget

        options = self.options
        model = loaded.model
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        for module_name, module in list(model.named_modules()):
            in_head = f"{module_name}.weight" in self.head
            if isinstance(module, nn.Linear) and (options.mixout_head or not in_head):
                mix = MixoutToTarget(module.weight, float(options.mixout_p), options.mixout_unit == "neuron")
                parametrize.register_parametrization(module, "weight", mix, unsafe=True)
            elif isinstance(module, nn.Dropout) and not options.mixout_keep_dropout:
                module.p = 0.0
        return model

    def trainable(self) -> dict[str, nn.Parameter]:
        # The model's own names (`...dense.weight`), not parametrize's, in checkpoints.
        return {name.replace(ORIGINAL, ".weight"): p for name, p in self.loaded.model.named_parameters()}

    def export(self) -> nn.Module:
        from torch.nn.utils import parametrize

        model = self.loaded.model
        for module in list(model.modules()):
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
        return model
