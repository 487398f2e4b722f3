"""How far a cola run's task head moved, and whether its pooler saturates (issue 14).

    python experiments/pooler_probe.py runs/learn_sweep/*/cola/*/seed1

A sparse run trains the dense head (MiniLM's pooler and the classifier) at its own
learning rate, 1e-3 for SAM against full fine-tuning's 3e-5. One suspect for SAM's slow
start on cola was a head pushed into tanh saturation, where the gradient to the encoder
vanishes. For each run dir (its saved model: the best dev epoch) this prints the
pooler's relative change from the embedded model, the share of pooled units with
|tanh| > 0.99 on the first 256 cola validation sentences, the share predicted
"acceptable", and the classifier's norm. Data: $SPARSETUNE_DATA_DIR or ../shared/data.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from sparsetune.models import embedded_model_path, quiet_transformers

SENTENCES = 256


def main(runs: list[str]) -> int:
    if not runs:
        print("usage: python experiments/pooler_probe.py RUN_DIR...", file=sys.stderr)
        return 2
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from sparsetune.data import read_jsonl
    from sparsetune.tasks import get_task

    quiet_transformers()
    torch.set_num_threads(1)
    task = get_task("cola")
    data = Path(os.environ.get("SPARSETUNE_DATA_DIR", "../shared/data"))
    sentences = [row["sentence"] for row in read_jsonl(data / "cola" / "validation.jsonl", task)[:SENTENCES]]
    base = load_file(embedded_model_path() / "model.safetensors")["pooler.dense.weight"]
    print("| run | pooler change | saturated | predicted acceptable | classifier norm |")
    print("|---|---:|---:|---:|---:|")
    for run in runs:
        model = AutoModelForSequenceClassification.from_pretrained(run).eval()
        batch = AutoTokenizer.from_pretrained(run)(
            sentences, padding=True, truncation=True, max_length=64, return_tensors="pt"
        )
        with torch.no_grad():
            out = model(**batch, output_hidden_states=True)
            pooled = model.bert.pooler(out.hidden_states[-1])
            change = (model.bert.pooler.dense.weight - base).norm() / base.norm()
            saturated, acceptable = (pooled.abs() > 0.99).float().mean(), out.logits.argmax(-1).float().mean()
            norm = model.classifier.weight.norm()
        print(f"| {run} | {float(change):.2f} | {float(saturated):.0%} | {float(acceptable):.0%} | {float(norm):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
