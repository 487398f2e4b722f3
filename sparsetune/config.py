"""Frozen configurations, one per stage: what a library call needs, nothing it computes.

The CLI builds one of these from its flags and passes it to one library function; a
Python user builds the same object. The pipeline's default values are defined here,
once, and read by the CLI, the stages and the file formats alike (device and precision
are `runtime`'s, per-task training hyperparameters `defaults`').
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .errors import UsageError
from .runtime import DEFAULT_DEVICE, DEFAULT_PRECISION

DEFAULT_SPARSITY = 0.005  # the paper's p: 0.5% of the eligible entries
DEFAULT_SCORER = "sam"  # the paper's scoring method
MASK_METHOD = "sparse"  # the training method of `train --mask`
SCOPES = ("global", "per-tensor")  # global top-k (Theorem 3) or ⌊n·p⌋ per tensor
DEFAULT_SCOPE = "global"
DEFAULT_SEED = 42  # the protocol split, data order, head initialisation
MAX_SEED = 2**32 - 1  # numpy's limit, the strictest of the generators a seed reaches (torch, numpy, random)
DEFAULT_DEV_FRACTION = 0.1  # of train, held out for model selection (the paper's protocol)
BATCH_SIZE = 16  # examples per step: the paper's (training), and scoring's
MAX_LENGTH = 128  # tokens: scoring, and evaluating a model dir that records none
EVAL_BATCH_SIZE = 64  # examples per forward pass in `eval`
MASK_FILE = "mask.safetensors"  # what the CLI's `score` and `mask` write by default, and a run's copy of its mask
DATA_DIR_ENV = "SPARSETUNE_DATA_DIR"  # the offline data folder (`--data-dir`)
EVAL_SPLITS = ("validation", "dev", "train")  # validation is the test set (the paper's protocol)
# Is a pretrained pooler that the classifier reads (BERT-style models) task head or
# eligible? "head" by default, as the paper's RoBERTa head is new (sparsetune.models).
POOLER_POLICIES = ("head", "eligible")
DEFAULT_POOLER = "head"
# The optimisation settings of a run, in the order run.json, the model card and
# `train --resume`'s comparison list them.
OPTIMISATION = (
    "epochs",
    "max_steps",
    "lr",
    "batch_size",
    "max_length",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "seed",
)


def check_scope(scope: str, flag: str = "--scope") -> str:
    """The scope if it is one of `SCOPES`; a usage error naming `flag` otherwise."""
    if scope not in SCOPES:
        raise UsageError(f"{flag} must be one of {', '.join(SCOPES)}, got {scope!r}")
    return scope


@dataclass(frozen=True)
class ScoreConfig:
    """`sparsetune score`: one pass over the train part of the split -> a mask file.

    `examples=None` means the whole train part (the paper's SAM used all of it); a
    number takes a seeded subset. `output=None` (the default) keeps the mask in memory only.
    `p=None` means `DEFAULT_SPARSITY`; methods that fix their own selection (bitfit)
    ignore p and note it when one was given. `pooler="head"` puts a pretrained pooler
    that the classifier reads (BERT-style models) in the task head, out of the eligible
    set, as the paper's RoBERTa head is new; "eligible" scores it like any other tensor.
    """

    task: str
    model: str | None = None
    p: float | None = None
    method: str = DEFAULT_SCORER
    examples: int | None = None
    batch_size: int = BATCH_SIZE
    max_length: int = MAX_LENGTH
    scope: str = DEFAULT_SCOPE
    seed: int = DEFAULT_SEED
    dev_fraction: float = DEFAULT_DEV_FRACTION
    data_dir: str | None = None
    output: str | None = None  # a library call writes no file unless asked (the CLI's -o: mask.safetensors)
    save_scores: str | None = None
    pooler: str = DEFAULT_POOLER
    force: bool = False
    device: str = DEFAULT_DEVICE  # auto: CUDA when present (`sparsetune.runtime`)
    precision: str = DEFAULT_PRECISION  # fp32 | bf16 | fp16 (autocast; the gradient stays fp32)
    revision: str | None = None  # a hub id's branch, tag or commit (the mask records the commit)


@dataclass(frozen=True)
class MaskConfig:
    """`sparsetune mask`: re-threshold saved scores at another p, no gradients."""

    scores: str
    p: float
    output: str | None = None  # in memory only unless asked (the CLI's -o: mask.safetensors)
    scope: str | None = None  # None: the scope recorded in the scores file, else global
    force: bool = False


@dataclass(frozen=True)
class DiffConfig:
    """`sparsetune diff`: a fine-tuned run, model dir or hub id -> the entries that changed.

    `base=None` takes the base from the run's run.json, else the embedded MiniLM.
    `task` is only needed for a plain model dir whose config names no architecture.
    `top_p` keeps the fraction P of eligible entries with the largest |θ − θ0|.
    `output=None` keeps the delta in memory (the CLI then writes it to stdout).
    `pooler=None` takes the run's policy from run.json (runs from before it: "eligible"),
    else "head": a head pooler travels dense beside the classifier, never as indices.
    """

    run: str
    base: str | None = None
    output: str | None = None
    values: str = "float32"
    top_p: float | None = None
    task: str | None = None
    pooler: str | None = None
    force: bool = False


@dataclass(frozen=True)
class ApplyConfig:
    """`sparsetune apply`: base + one or more deltas -> a plain transformers model dir.

    `base=None` takes the base every delta names. `force` overwrites `output` and
    applies even where the base's fingerprint does not match.
    """

    deltas: tuple[str, ...]
    output: str
    base: str | None = None
    force: bool = False
    merge: bool = False  # a LoRA delta: write the merged plain model instead of base + adapter


@dataclass(frozen=True)
class TrainConfig:
    """`sparsetune train`: fine-tune with a mask (method `sparse`) or a named method.

    `None` means "the default": model and task from the mask's metadata, epochs, lr,
    batch size and max length from `sparsetune.defaults` for the task, the dev split
    (fraction and seed) from the mask so that model selection never sees data the mask
    was scored on. With `resume`, `None` means "as in the interrupted run", and a value
    that differs from it is an error. `pooler=None` means the mask's policy (a mask from
    before the policy existed: "eligible", as it was made), else "head"; a value that
    contradicts the mask is an error, since the mask's p counts over its eligible set.
    """

    output: str
    model: str | None = None
    task: str | None = None
    mask: str | None = None
    method: str | None = None  # None: MASK_METHOD with a mask, else an error
    epochs: int | None = None
    max_steps: int | None = None
    lr: float | None = None
    batch_size: int | None = None
    max_length: int | None = None
    warmup_ratio: float | None = None
    weight_decay: float | None = None
    max_grad_norm: float | None = None
    seed: int | None = None
    eval_every: int | None = None  # None: at each epoch end only
    dev_fraction: float | None = None
    data_dir: str | None = None
    # {"lora_r": 8} from Python, or the CLI's (("lora_r", "8"),) pairs: values are parsed by
    # the method's Options either way
    method_options: Mapping[str, Any] | tuple[tuple[str, Any], ...] = ()
    pooler: str | None = None  # "head" | "eligible"; None: the mask's, else "head"
    resume: bool = False
    force: bool = False
    device: str = DEFAULT_DEVICE  # never recorded: a run may resume on another device
    precision: str | None = None  # None: fp32, or the interrupted run's
    report_to: str = "none"  # tensorboard | wandb: accelerate's tracker, logs under OUT/logs
    revision: str | None = None  # None: the mask's, else the hub's default branch


@dataclass(frozen=True)
class EvalConfig:
    """`sparsetune eval`: a run dir (task from run.json), or a model with a task head: a
    folder, or a hub id (at `revision`, offline first as everywhere).

    `split`: `validation` is the test set (the paper's protocol), `dev` the held-out part
    of train used for model selection, `train` the rest.
    """

    target: str
    task: str | None = None
    split: str = "validation"
    data_dir: str | None = None
    batch_size: int = EVAL_BATCH_SIZE
    max_length: int | None = None  # None: the run's, else MAX_LENGTH
    record: bool = True  # write test metrics into run.json
    device: str = DEFAULT_DEVICE
    precision: str | None = None  # None: the precision the run trained in, else fp32
    revision: str | None = None  # a hub model's branch, tag or commit (`target` a hub id)
