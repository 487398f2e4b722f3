"""Saved files, one module per kind: what each holds, and how it is checked, read, written
and summarised.

    mask.py        mask.safetensors     which entries may change (score -> train)
    scores.py      scores.safetensors   the raw per-entry scores (score --save-scores -> mask)
    delta.py       delta.safetensors    what a fine-tune changed (diff -> apply)
    run_record.py  OUT/run.json         what a run was and scored, and OUT/README.md, its model card
    checkpoint.py  OUT/checkpoint/      what `train --resume` needs
    method_dir.py  OUT/method/          a structural method's own tensors (LoRA, adapters)
    log.py         OUT/log.jsonl        loss per step, dev metrics per evaluation

`common.py` holds the safetensors plumbing and the per-layer table the first three share.
Every kind module has `KIND`, `recognise(path)` and `summarise(path)` (what `sparsetune
inspect` shows); `FORMATS` lists them in the order `inspect` tries them (a run dir holds a
checkpoint and a method dir, so it comes first).
"""

from . import checkpoint, delta, log, mask, method_dir, run_record, scores
from .common import file_kind, read_metadata
from .mask import Mask
from .scores import Scores

FORMATS = {module.KIND: module for module in (run_record, checkpoint, method_dir, log, mask, scores, delta)}

__all__ = ["FORMATS", "Mask", "Scores", "file_kind", "read_metadata"]
