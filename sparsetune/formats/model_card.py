"""`OUT/README.md`: a Hugging Face model card for a run, rewritten with run.json.

The hub (and anyone opening the folder) reads README.md first: what the model is, how
it was trained, how well it did, and how to load or ship it. Everything in it comes
from the run record, so `eval` (which records test metrics) refreshes it too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..io import atomic_path

if TYPE_CHECKING:
    from .run_record import RunRecord

CARD_FILE = "README.md"
EMBEDDED = "embedded:all-MiniLM-L6-v2"
EMBEDDED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  # what the embedded package ships
HYPERPARAMETERS = ("epochs", "max_steps", "lr", "batch_size", "max_length", "warmup_ratio", "weight_decay",
                   "max_grad_norm", "seed", "dev_fraction", "precision", "method_options")


def _hub_id(base: str) -> str | None:
    if base == EMBEDDED:
        return EMBEDDED_HUB_ID
    return None if os.path.isabs(base) or base.startswith(".") or Path(base).exists() else base


def _metrics(metrics: dict[str, Any]) -> str:
    return " · ".join(f"{key} {value:.4f}" for key, value in metrics.items() if isinstance(value, (int, float)))


def render(record: "RunRecord", folder_name: str = "OUT") -> str:
    counts = record.trainable_parameters
    hyper = record.hyperparameters
    hub_id = _hub_id(record.base_model)
    front = ["---", "library_name: transformers", "tags:", "- sparsetune", "- sparse-fine-tuning", f"- {record.method}"]
    if hub_id:
        front.append(f"base_model: {hub_id}")
    front.append("---")
    changed = counts.get("pretrained_trainable", 0)
    budget = (
        f"{changed:,} of {counts.get('eligible', 0):,} pretrained entries ({100 * counts.get('fraction', 0.0):.3g}%)"
        f" + {counts.get('head', 0):,} head entries"
    )
    if counts.get("added"):
        budget = f"{counts['added']:,} added parameters + " + budget
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
        f"- dev (held-out part of train, best step {record.best.get('step', '?')}): {_metrics(record.best.get('dev', {}))}",
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


def write_card(run_dir: str | os.PathLike, record: "RunRecord") -> None:
    folder = Path(run_dir)
    with atomic_path(folder / CARD_FILE) as tmp:
        tmp.write_text(render(record, folder.name or "OUT"), encoding="utf-8")
