"""`adapter`: bottleneck adapters, Houlsby et al. 2019 (arXiv 1902.00751) and Pfeiffer et
al. 2020 (AdapterFusion, arXiv 2005.00247); a baseline of the paper.

    sparsetune train --method adapter --adapter-config houlsby --reduction-factor 16 --task cb -o ad/

An adapter is a(h) = W_up · f(W_down · h) with W_down: [size, hidden], W_up: [hidden, size],
size = hidden / reduction factor (or `--adapter-size`). It is placed as in the `adapters`
library's configs of the same names (which pin transformers 4.x, hence this one module):

- houlsby: after the attention output projection and after the FFN output projection (post
  dropout), with its own residual, d <- d + a(d), before the sub-layer's Add & LayerNorm;
  f = swish; the LayerNorms train too (Houlsby et al., Section 2.1).
- pfeiffer: after the FFN only, fed the sub-layer's normalised output o = LN(d + x) and
  added before the same LayerNorm: LN(d + x + a(o)); f = ReLU; LayerNorms stay frozen.

W_up starts at zero (W_down ~ N(0, 0.01²) truncated at 2σ, Houlsby's near-identity init), so
the model starts exactly at θ0. The adapters attach to BERT-style `*SelfOutput` / `*Output`
modules (those with `dense`, `dropout` and `LayerNorm`) through forward hooks, so the
pretrained parameter names are unchanged and the new ones read `...output.adapter.down.weight`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from ..errors import UsageError
from .registry import option, register_method
from .structural import StructuralMethod, check_range

if TYPE_CHECKING:
    from torch import nn

    from ..models import LoadedModel

CONFIGS = {  # name -> (attention adapter too?, activation, LayerNorms train?)
    "houlsby": (True, "silu", True),
    "pfeiffer": (False, "relu", False),
}
DEFAULT_REDUCTION = 16.0


@dataclasses.dataclass(frozen=True)
class AdapterOptions:
    adapter_config: str = option("houlsby", "houlsby (after attention and FFN) or pfeiffer (FFN)", "--adapter-config")
    adapter_size: int = option(
        0, "bottleneck width (or give --reduction-factor)", "--adapter-size", shown="", least=1
    )  # 0: hidden / factor
    reduction_factor: float = option(  # 0: 16, the `adapters` library's default for both configs
        0.0, "hidden size / bottleneck width", "--reduction-factor", shown=f"{DEFAULT_REDUCTION:g}", least=1.0
    )

    def check(self, name) -> None:
        if self.adapter_config not in CONFIGS:
            raise UsageError(
                f"{name('adapter_config')} must be one of {', '.join(CONFIGS)}, got {self.adapter_config!r}"
            )
        if self.adapter_size and self.reduction_factor:
            raise UsageError(f"give {name('adapter_size')} or {name('reduction_factor')}, not both")


def _sublayers(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, is_attention) for every BERT-style output block: dense -> dropout -> LN(+x)."""
    found = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if all(hasattr(module, attr) for attr in ("dense", "dropout", "LayerNorm")) and kind.endswith("Output"):
            found.append((name, module, kind.endswith("SelfOutput")))
    return found


def size_of(options: AdapterOptions, hidden: int) -> int:
    if options.adapter_size:
        check_range(options.adapter_size, "--adapter-size", 1)
        return int(options.adapter_size)
    factor = options.reduction_factor or DEFAULT_REDUCTION
    check_range(factor, "--reduction-factor", 1.0, float(hidden), high_open=False)
    return max(1, int(hidden // factor))


@register_method("adapter")
class AdapterMethod(StructuralMethod):
    """Frozen backbone + bottleneck adapters (+ LayerNorms for houlsby) + the head (dense)."""

    title = "Adapters"
    default_lr = 1e-3  # chosen on dev (experiments/lr_sweep.toml, results/lr_sweep/report.md)
    Options = AdapterOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from ..core.adapters import Bottleneck, after_dropout, inside_layernorm

        attention, activation, train_norms = CONFIGS[self.options.adapter_config]
        blocks = _sublayers(loaded.model)
        if not blocks:
            raise UsageError(
                f"--method adapter: {type(loaded.model).__name__} has no BERT-style output blocks to attach adapters to"
            )
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(False)
        for _, module, is_attention in blocks:
            if is_attention and not attention:
                continue
            hidden = module.dense.out_features
            module.adapter = Bottleneck(hidden, size_of(self.options, hidden), activation)
            if attention:  # houlsby: d <- d + a(d) on both sub-layers
                module.dropout.register_forward_hook(after_dropout(module.adapter))
            else:  # pfeiffer: LN(d + x + a(LN(d + x))) on the FFN
                module.LayerNorm.register_forward_hook(inside_layernorm(module.adapter))
            if train_norms:
                module.LayerNorm.requires_grad_(True)
        for parameter in self.head.values():
            parameter.requires_grad_(True)
        return loaded.model

    def trainable(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.loaded.model.named_parameters() if p.requires_grad}

    def model(self) -> nn.Module:
        return self.loaded.model

    def export(self) -> nn.Module:
        # The transformers class saves every tensor, adapters included (plain transformers
        # would ignore `*.adapter.*` on load: OUT/method/ is how the model is rebuilt).
        return self.loaded.model
