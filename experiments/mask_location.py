"""Where a mask spends its budget: the share of its selected entries per layer and per
module type, one row per mask (`inspect` shows the fraction of each group selected; this
shows where the k entries went, which is what comparing two masks needs).

    python experiments/mask_location.py runs/learn_sweep/SAM@lr=0.001/*/p0.005/seed1/mask.safetensors

Prints a markdown table: % of the selected entries in each layer (emb = the embeddings
block) and in each module type (qkv = query/key/value weights, att-o and ffn-i/ffn-o the
dense weights, LN = LayerNorm weights and biases, bias = the other biases, embed = the
word, position and token-type embedding tables, head = the pooler and classifier, which
a mask holds only when made with `--pooler eligible`).
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from sparsetune.formats.mask import Mask

LAYER = re.compile(r"layer\.(\d+)\.")


def module_type(name: str) -> str:
    if "pooler" in name or "classifier" in name:  # eligible only with --pooler eligible
        return "head"
    if "LayerNorm" in name:
        return "LN"
    if name.endswith("bias"):
        return "bias"
    if "embeddings" in name:
        return "embed"
    if re.search(r"\.(query|key|value)\.", name):
        return "qkv"
    if "attention.output" in name:
        return "att-o"
    return "ffn-i" if "intermediate" in name else "ffn-o"


def shares(path: Path) -> tuple[Counter, Counter, int]:
    """(% per layer, % per module type, selected entries) of one mask."""
    mask = Mask.load(path)
    layers, types = Counter(), Counter()
    for name, (selected, _) in mask.per_tensor().items():
        layer = LAYER.search(name)
        layers[f"L{layer.group(1)}" if layer else "head" if module_type(name) == "head" else "emb"] += selected
        types[module_type(name)] += selected
    total = mask.selected
    return (
        Counter({key: 100 * value / total for key, value in layers.items()}),
        Counter({key: 100 * value / total for key, value in types.items()}),
        total,
    )


def main(paths: list[str]) -> int:
    if not paths:
        print(
            "usage: " + next(line.strip() for line in __doc__.splitlines() if "mask_location.py" in line),
            file=sys.stderr,
        )
        return 2
    rows = [(path, *shares(Path(path))) for path in paths]
    order = {"emb": -1, "head": 1_000}  # the embeddings first, L0, L1, ..., L10 in number order, the head last
    layers = sorted({key for _, per_layer, _, _ in rows for key in per_layer}, key=lambda k: order.get(k) or int(k[1:]))
    types = ["qkv", "att-o", "ffn-i", "ffn-o", "LN", "bias", "embed", "head"]
    print("| mask | k | " + " | ".join(layers) + " | " + " | ".join(types) + " |")
    print("|---|---:|" + "---:|" * (len(layers) + len(types)))
    for path, per_layer, per_type, total in rows:
        cells = [f"{per_layer[key]:.1f}" for key in layers] + [f"{per_type[key]:.1f}" for key in types]
        print(f"| {path} | {total:,} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
