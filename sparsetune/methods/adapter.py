"""`adapter`: bottleneck adapters, Houlsby et al. 2019 (arXiv 1902.00751) and Pfeiffer et
al. 2020 (AdapterFusion, arXiv 2005.00247); a baseline of Fu et al. 2023 (arXiv 2211.15583).

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

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import UsageError
from ..models import LoadedModel
from .registry import register_method
from .structural import StructuralMethod, check_range

CONFIGS = {  # name -> (attention adapter too?, activation, LayerNorms train?)
    "houlsby": (True, "silu", True),
    "pfeiffer": (False, "relu", False),
}
DEFAULT_REDUCTION = 16.0


@dataclasses.dataclass(frozen=True)
class AdapterOptions:
    adapter_config: str = "houlsby"
    adapter_size: int = 0  # 0: hidden / reduction factor
    reduction_factor: float = 0.0  # 0: 16, the `adapters` library's default for both configs


class Bottleneck(nn.Module):
    """a(h) = W_up f(W_down h); zero W_up, so a ≡ 0 at the start."""

    def __init__(self, hidden: int, size: int, activation: str):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        self.activation = activation
        with torch.no_grad():
            nn.init.trunc_normal_(self.down.weight, std=1e-2, a=-2e-2, b=2e-2)
            nn.init.zeros_(self.down.bias)
            nn.init.zeros_(self.up.weight)
            nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # [batch, seq, hidden] -> same
        return self.up(getattr(F, self.activation)(self.down(hidden)))


def _sublayers(model: nn.Module) -> list[tuple[str, nn.Module, bool]]:
    """(name, module, is_attention) for every BERT-style output block: dense -> dropout -> LN(+x)."""
    found = []
    for name, module in model.named_modules():
        kind = type(module).__name__
        if all(hasattr(module, attr) for attr in ("dense", "dropout", "LayerNorm")) and kind.endswith("Output"):
            found.append((name, module, kind.endswith("SelfOutput")))
    return found


def _after_dropout(adapter: Bottleneck):
    def hook(module, inputs, output):  # output d: [batch, seq, hidden]
        return output + adapter(output)

    return hook


def _inside_layernorm(adapter: Bottleneck):
    def hook(module, inputs, output):  # inputs[0] = d + x, output = LN(d + x)
        return F.layer_norm(inputs[0] + adapter(output), module.normalized_shape, module.weight, module.bias, module.eps)

    return hook


def size_of(options: AdapterOptions, hidden: int) -> int:
    if options.adapter_size and options.reduction_factor:
        raise UsageError("give --adapter-size or --reduction-factor, not both")
    if options.adapter_size:
        check_range(options.adapter_size, "--adapter-size", 1)
        return int(options.adapter_size)
    factor = options.reduction_factor or DEFAULT_REDUCTION
    check_range(factor, "--reduction-factor", 1.0, float(hidden), high_open=False)
    return max(1, int(hidden // factor))


@register_method("adapter")
class AdapterMethod(StructuralMethod):
    """Frozen backbone + bottleneck adapters (+ LayerNorms for houlsby) + the head (dense)."""

    Options = AdapterOptions

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        if self.options.adapter_config not in CONFIGS:
            raise UsageError(f"--adapter-config must be one of {', '.join(CONFIGS)}, got {self.options.adapter_config!r}")
        attention, activation, train_norms = CONFIGS[self.options.adapter_config]
        blocks = _sublayers(loaded.model)
        if not blocks:
            raise UsageError(f"--method adapter: {type(loaded.model).__name__} has no BERT-style output blocks to attach adapters to")
        for parameter in loaded.model.parameters():
            parameter.requires_grad_(False)
        for _, module, is_attention in blocks:
            if is_attention and not attention:
                continue
            hidden = module.dense.out_features
            module.adapter = Bottleneck(hidden, size_of(self.options, hidden), activation)
            if attention:  # houlsby: d <- d + a(d) on both sub-layers
                module.dropout.register_forward_hook(_after_dropout(module.adapter))
            else:  # pfeiffer: LN(d + x + a(LN(d + x))) on the FFN
                module.LayerNorm.register_forward_hook(_inside_layernorm(module.adapter))
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
