"""`OUT/run.json`: what a training run was and what it scored, and `OUT/README.md`, the
Hugging Face model card rendered from it.

run.json is how `eval OUT/` and `diff OUT/` need no repeated flags: the base model, the
task and the method are read from here. Test metrics are added by `eval`. Every save also
rewrites the model card: the hub (and anyone opening the folder) reads README.md first:
what the model is, how it was trained, how well it did, and how to load or ship it.
Everything in it comes from the run record, so `eval` (which records test metrics)
refreshes it too.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import DEFAULT_SEED, OPTIMISATION
from ..errors import FileFormatError, UsageError
from ..io import atomic_path, loads_json, write_json
from ..models import DEFAULT_MODEL_HUB_ID, DEFAULT_MODEL_NAME
from ..schema import RUN_RECORD, validate
from .common import json_format

KIND = "run"
FORMAT = "sparsetune.run"
VERSION = "1"
RUN_FILE = "run.json"


@dataclass
class RunRecord:
    """A finished run, as `OUT/run.json` holds it and `train` returns it: the base and
    task it trained, every resolved hyperparameter (so a rerun needs no flags), what it
    trained (`trainable_parameters`), its best dev evaluation, the test metrics `eval`
    recorded, and the wall seconds of every attempt."""

    base_model: str
    task: str
    method: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = DEFAULT_SEED
    mask_sha256: str | None = None
    trainable_parameters: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float | None = None
    sparsetune_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def base_revision(self) -> str | None:
        """The hub commit the run's base was loaded at (None for a local folder): diff, eval
        and apply reload that base, and must get the same tensors, not the branch's newest."""
        return self.extra.get("model_commit") or self.hyperparameters.get("revision") or None

    def save(self, run_dir: str | os.PathLike) -> None:
        """run.json, then the model card rendered from it (README.md)."""
        write_json(Path(run_dir) / RUN_FILE, {"format": FORMAT, "version": VERSION, **asdict(self)})
        write_card(run_dir, self)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "RunRecord":
        path = Path(run_dir) / RUN_FILE
        if not path.is_file():
            raise UsageError(
                f"{run_dir} is not a sparsetune run (no {RUN_FILE}); pass --task (and --base) for a plain model dir"
            )
        try:
            data = loads_json(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FileFormatError(f"{path} is not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise FileFormatError(f"{path} is not a sparsetune run record")
        data.pop("version", None)
        validate(data, RUN_RECORD, str(path), hint="; restore it, or retrain the run")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as err:
            raise FileFormatError(f"{path} is missing fields ({err})") from None


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()


def recognise(path: Path) -> bool:
    """A run dir, or its run.json."""
    return is_run_dir(path) if path.is_dir() else path.name == RUN_FILE and json_format(path) == FORMAT


def summarise(path: Path) -> dict:
    """What `sparsetune inspect` shows of a run: what it was, what it trained, how it scored."""
    record = RunRecord.load(path if path.is_dir() else path.parent)
    counts = record.trainable_parameters
    metadata = {
        "base_model": record.base_model,
        "task": record.task,
        "method": record.method,
        "seed": record.seed,
        "mask_sha256": record.mask_sha256,
        "sparsetune_version": record.sparsetune_version,
        **{key: record.extra[key] for key in ("model_commit",) if key in record.extra},
    }
    totals = {
        **{
            key: counts[key]
            for key in ("trainable", "pretrained_trainable", "added", "head", "eligible", "fraction")
            if key in counts
        },
        "steps": record.extra.get("steps"),
        "seconds": record.seconds,
        "best_step": record.best.get("step"),
        "best_dev_score": record.best.get("score"),
        **{
            f"{split}_score": metrics["score"]
            for split, metrics in record.metrics.items()
            if split != "dev" and "score" in metrics
        },
    }
    return {
        "metadata": {k: v for k, v in metadata.items() if v is not None},
        "totals": totals,
        "hyperparameters": record.hyperparameters,
        "metrics": record.metrics,
    }


# -- the model card (OUT/README.md) ---------------------------------------------------
CARD_FILE = "README.md"
HYPERPARAMETERS = (
    *OPTIMISATION,
    "dev_fraction",
    "precision",
    "method_options",
)


def _hub_id(base: str) -> str | None:
    if base == DEFAULT_MODEL_NAME:
        return DEFAULT_MODEL_HUB_ID
    return None if os.path.isabs(base) or base.startswith(".") or Path(base).exists() else base


def _metrics(metrics: dict[str, Any]) -> str:
    return " · ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, (int, float)))


def budget_words(counts: dict[str, Any]) -> str:
    """What a run trained, in words (the model card's and `train`'s summary): the share
    of the eligible entries goes with the count it is a share of, added parameters
    (LoRA, adapters) included."""
    pretrained, eligible, head = counts.get("pretrained_trainable", 0), counts.get("eligible", 0), counts.get("head", 0)
    share = f"{100 * counts.get('fraction', 0.0):.3g}% of the {eligible:,} eligible"
    if counts.get("added"):
        trained = f"{counts['added']:,} added parameters and {pretrained:,} pretrained entries ({share})"
    else:
        trained = f"{pretrained:,} pretrained entries ({share})"
    return f"{trained} + {head:,} head entries"


def render(record: RunRecord, folder_name: str = "OUT") -> str:
    counts = record.trainable_parameters
    hyper = record.hyperparameters
    hub_id = _hub_id(record.base_model)
    front = ["---", "library_name: transformers", "tags:", "- sparsetune", "- sparse-fine-tuning", f"- {record.method}"]
    if hub_id:
        front.append(f"base_model: {hub_id}")
    front.append("---")
    budget = budget_words(counts)
    lines = [
        *front,
        "",
        f"# {record.task} · {record.method} fine-tune of {record.base_model}",
        "",
        f"Fine-tuned with [sparsetune](https://arxiv.org/abs/2211.15583) {record.sparsetune_version}: "
        f"method `{record.method}`, trained {budget}."
        + (" Every other pretrained entry is the base model's, bit for bit." if record.mask_sha256 else ""),
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {key} | {hyper[key]} |" for key in HYPERPARAMETERS if hyper.get(key) not in (None, {}, "")),
        f"| steps | {record.extra.get('steps', '?')} |",
        "",
        "## Results",
        "",
        f"- dev (held-out part of train, best step {record.best.get('step', '?')}): "
        f"{_metrics(record.best.get('dev', {}))}",
    ]
    if "validation" in record.metrics:
        lines.append(f"- test (the official validation split): {_metrics(record.metrics['validation'])}")
    else:
        lines.append(f"- test: not evaluated yet (`sparsetune eval {folder_name}`)")
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer  # ...ForMultipleChoice for copa",
        f'model = AutoModelForSequenceClassification.from_pretrained("{folder_name}")',
        f'tokenizer = AutoTokenizer.from_pretrained("{folder_name}")',
        "```",
        "",
        "Share only what changed, and rebuild it on the base:",
        "",
        "```bash",
        f"sparsetune diff {folder_name} > delta.safetensors",
        "sparsetune apply delta.safetensors -o applied/",
        "```",
        "",
    ]
    return "\n".join(lines)


def write_card(run_dir: str | os.PathLike, record: RunRecord) -> None:
    folder = Path(run_dir)
    with atomic_path(folder / CARD_FILE) as tmp:
        tmp.write_text(render(record, folder.name or "OUT"), encoding="utf-8")
