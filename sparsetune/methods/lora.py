"""`lora`: low-rank adapters (Hu et al. 2022, arXiv 2106.09685) through the `peft` library,
one of the baselines of the paper's Table 1.

    sparsetune train --method lora --task cb --lora-r 16 --lora-alpha 16 -o lora/

Every targeted linear layer W gets W + (α/r)·B·A with A: [r, in] (Kaiming) and B: [out, r]
(zeros), so training starts at θ0; only A, B and the head train (peft's
`modules_to_save`). Defaults: r = 16 on query, key, value, the attention output and both
FFN projections, α = r (scale 1), no LoRA dropout (the model's own dropout stays).

A run keeps the adapter as peft writes it (`OUT/method/`: `PeftModel.from_pretrained(base,
"OUT/method")` loads it) and the merged plain model as `OUT/model.safetensors`.
"""

from __future__ import annotations

import copy
import dataclasses
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from ..errors import UsageError
from ..models import portable_name
from .registry import option, register_method
from .structural import StructuralMethod, check_range

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ..models import LoadedModel

DEFAULT_TARGETS = "query,key,value,attention.output.dense,intermediate.dense,output.dense"


@dataclasses.dataclass(frozen=True)
class LoraOptions:
    lora_r: int = option(16, "rank r of each B·A", "--lora-r")
    lora_alpha: float = option(16.0, "α; the update is scaled by α/r", "--lora-alpha")
    lora_dropout: float = option(0.0, "dropout on the LoRA input", "--lora-dropout")
    lora_targets: str = option(  # peft's target_modules
        DEFAULT_TARGETS, "comma-separated module-name suffixes", "--lora-targets", shown="Q,K,V,attention out, FFN"
    )

    def check(self, name) -> None:
        check_range(self.lora_r, name("lora_r"), 1)
        check_range(self.lora_alpha, name("lora_alpha"), 1e-12)
        check_range(self.lora_dropout, name("lora_dropout"), 0.0, 1.0)
        if not self.targets():
            raise UsageError(f"{name('lora_targets')} is empty; name module suffixes, e.g. query,value")

    def targets(self) -> list[str]:
        return [target.strip() for target in self.lora_targets.split(",") if target.strip()]


def head_modules(head_names) -> list[str]:
    """Module paths of the head (`classifier.weight` -> `classifier`; `bert.pooler.dense` under --pooler head):
    peft trains them fully, as `modules_to_save`."""
    return sorted({name.rpartition(".")[0] for name in head_names})


def lora_config(options: LoraOptions, head: list[str]):
    from peft import LoraConfig

    return LoraConfig(
        r=int(options.lora_r),
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.targets(),
        modules_to_save=head,
    )


@register_method("lora")
class LoraMethod(StructuralMethod):
    """peft's LoRA on the targeted layers + the head; the backbone stays θ0."""

    title = "LoRA"
    default_lr = 1e-3  # chosen on dev (experiments/learn_sweep.toml, results/learn_sweep/report.md)
    Options = LoraOptions
    mergeable = True

    def prepare(self, loaded: LoadedModel) -> nn.Module:
        from peft import get_peft_model

        config = lora_config(self.options, head_modules(self.head))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # transformers v5 deprecations inside peft
                self.peft_model = get_peft_model(loaded.model, config)
        except ValueError as err:
            raise UsageError(f"--lora-targets {self.options.lora_targets}: {str(err).splitlines()[0]}") from None
        return self.peft_model

    def trainable(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.peft_model.named_parameters() if p.requires_grad}

    def model(self) -> nn.Module:
        return self.peft_model

    def own_tensors(self) -> dict[str, torch.Tensor]:
        """peft's adapter state dict: lora_A/lora_B per layer + the head (adapter name dropped)."""
        from peft import get_peft_model_state_dict

        return {name: tensor.detach().clone() for name, tensor in get_peft_model_state_dict(self.peft_model).items()}

    def load_own(self, tensors: Mapping[str, torch.Tensor]) -> None:
        import torch
        from peft import set_peft_model_state_dict

        self.check_own_names(tensors)
        with torch.no_grad():
            set_peft_model_state_dict(self.peft_model, dict(tensors))

    def merged(self) -> nn.Module:
        """W + (α/r)·B·A folded into each layer: a plain transformers model (a copy)."""
        return copy.deepcopy(self.peft_model).merge_and_unload()

    def export(self) -> nn.Module:
        return self.merged()

    def save_files(self, folder) -> None:
        from ..formats.method_dir import METHOD_DIR

        super().save_files(folder)  # method/: method.json + adapter_model.safetensors
        config = copy.copy(self.peft_model.peft_config["default"])
        # For peft's own loaders: the base by a name that travels, at the hub commit it was
        # trained on (None for a folder), and the task type (multiple choice has none in
        # peft). The head's size is the caller's to give, as for any peft classifier:
        # AutoPeftModelForSequenceClassification.from_pretrained(OUT/method, num_labels=N).
        config.base_model_name_or_path = portable_name(self.loaded.source)
        config.revision = self.loaded.commit
        if not type(self.loaded.model).__name__.endswith("ForMultipleChoice"):
            config.task_type = "SEQ_CLS"
        config.save_pretrained(
            str(Path(folder) / METHOD_DIR)
        )  # adapter_config.json: PeftModel.from_pretrained reads method/
