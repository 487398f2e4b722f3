#!/usr/bin/env bash
# Do two checkouts train bit-identically? The rule "all runs of one table come from one
# commit of the training numerics" lets a table mix runs from commits only if this holds.
#
#   bash experiments/same_numerics.sh OLD_TREE NEW_TREE [DATA_DIR]
#
# In each tree (a git worktree or clone; the current Python environment provides torch
# and the dependencies, PYTHONPATH selects the tree's own sparsetune) it scores a SAM mask
# on 256 mrpc examples and trains full, lora and sparse (on that tree's own mask) for 30
# bf16 steps, one thread each, then compares what they wrote: the mask's and every
# model's tensors, and LoRA's saved adapter weights. Metadata (format versions,
# checksums, configs) may differ; tensors may not. Exit status 1 on any difference.
# About 8 minutes for both trees here, sharing the two cores with grids. b9a138d (the
# sweeps') against db73ea2 (the H100 runs'): every file identical
# (results/evidence/same_numerics.txt; session 6's records compared a tree with itself).
set -euo pipefail
old=$(realpath "$1"); new=$(realpath "$2"); data=$(realpath "${3:-../shared/data}")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

one_tree() {  # TREE OUT, in a subshell from inside TREE: `python -m` puts the current
    local out=$2  # folder ahead of PYTHONPATH, so run from elsewhere both trees would be that folder's
    cd "$1"
    export PYTHONPATH=$1 OMP_NUM_THREADS=1
    local used
    used=$(python -c 'import sparsetune; print(sparsetune.__file__)')
    [[ $used == "$1"/* ]] || { echo "$1: python imports $used, not this tree's sparsetune" >&2; exit 2; }
    echo "$1 ($(git -C "$1" rev-parse --short HEAD)): $used" >&2
    python -m sparsetune score embedded:all-MiniLM-L6-v2 --task mrpc -p 0.005 --examples 256 \
        --precision bf16 --seed 1 --data-dir "$data" -o "$out/mask.safetensors" -q
    for method in full lora; do  # explicit rates: a change of the defaults is not a change of numerics
        python -m sparsetune train embedded:all-MiniLM-L6-v2 --method $method --task mrpc --max-steps 30 \
            --seed 1 --precision bf16 --lr 1e-4 --data-dir "$data" -o "$out/$method" -q
    done
    python -m sparsetune train embedded:all-MiniLM-L6-v2 --mask "$out/mask.safetensors" --max-steps 30 \
        --seed 1 --precision bf16 --lr 1e-3 --data-dir "$data" -o "$out/sparse" -q
}

( one_tree "$old" "$work/old" )
( one_tree "$new" "$work/new" )
python - "$work" <<'EOF'
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

work = Path(sys.argv[1])
files = ["mask.safetensors", "full/model.safetensors", "sparse/model.safetensors",
         "lora/model.safetensors", "lora/method/adapter_model.safetensors"]
different = 0
for name in files:
    old, new = load_file(work / "old" / name), load_file(work / "new" / name)
    same = old.keys() == new.keys() and all(torch.equal(old[key], new[key]) for key in old)
    different += not same
    print(f"{'identical' if same else 'DIFFERENT'}  {name} ({len(old)} tensors)")
sys.exit(1 if different else 0)
EOF
