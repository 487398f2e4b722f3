"""The pipeline, one module (or package) per verb of the CLI:

    score.py      score, mask      pretrained model + train data -> scores -> mask file
    train/        train            setup.py (flags, mask, defaults, resume) -> loop.py -> outputs.py (OUT/)
    evaluate.py   eval             a run or model dir -> the task's metrics
    diff.py       diff             a fine-tuned dir -> the entries that changed, as a delta file
    apply.py      apply            base + deltas -> a model dir
    inspect.py    inspect          any sparsetune file -> a summary (and a plot)

method_delta.py is the half of diff and apply that a structural run (LoRA, adapters) takes:
its own tensors instead of changed entries.

Each takes one frozen config from `sparsetune.config` and reports progress through a
callback (`sparsetune.progress`); the CLI is a thin shell over them.
"""
