"""diff and apply for structural runs (LoRA, adapters).

    sparsetune diff lora/ -o lora.safetensors && sparsetune apply lora.safetensors -o back/
    sparsetune apply lora.safetensors --merge -o plain/      # LoRA folded in: a plain HF model

A LoRA or adapter run changes no pretrained entry (Houlsby adapters' LayerNorms aside): what
it learned is its own tensors. So its delta is the usual delta file with no indices/values
and those tensors stored dense (the `head` section), plus metadata `method` and
`method_options` (JSON), `pooler` (the run's policy: under "head" the pooler is among the
method's own tensors, as LoRA's `modules_to_save` holds it), and `fingerprint` of *every*
eligible tensor of the base, because the added modules read all of them. `apply` rebuilds
base -> the method's structure -> the tensors through the method registry and writes the
same layout as a run dir (`method/` beside the exported model), so `eval` scores it exactly
like the run; `--merge` writes the merged plain model instead (LoRA only: adapters are not
linear).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config import ApplyConfig, DiffConfig
from ..errors import MismatchError, UsageError
from ..formats.common import load_tensors
from ..formats.delta import Delta, portable_config
from ..formats.method_dir import METHOD_DIR, WEIGHTS_FILE
from ..formats.run_record import RunRecord, is_run_dir
from ..io import atomic_path, writing
from ..methods.structural import build, is_structural, read_method_description
from ..models import LEGACY_POOLER, display_name, load_tokenizer, quiet_transformers
from ..progress import ProgressCallback, no_progress


def is_structural_delta(delta: Delta) -> bool:
    return is_structural(str(delta.metadata.get("method", "")))


def check_run_task(given: str | None, recorded: str, run: Path) -> None:
    """`diff --task` may only repeat a run's own task: its head is that task's."""
    from ..tasks import get_task

    if given and get_task(given).name != get_task(recorded).name:
        raise UsageError(f"--task {given}: {run} was trained for {recorded}; drop --task")


def diff_method(config: DiffConfig, progress: ProgressCallback = no_progress) -> Delta:
    """The delta of a folder with `method/`: the method's own tensors + how to rebuild."""
    run = Path(config.run)
    description = read_method_description(run)
    name = description["method"]
    if config.top_p is not None or config.values != "float32":
        raise UsageError(
            f"--top-p and --values apply to changed entries; a {name} run ships its own tensors in float32: drop them"
        )
    record = RunRecord.load(run) if is_run_dir(run) else None
    if record is not None:
        check_run_task(config.task, record.task, run)
    task = config.task or (record.task if record else None)
    if task is None:
        raise UsageError(f"{run} has no run.json; pass --task to say which task its head was trained for")
    base = config.base or description.get("base_model")
    revision = None if config.base else description.get("base_revision") or (record and record.base_revision)
    from ..tasks import get_task

    progress("load", 0, 1)
    tensors = load_tensors(run / METHOD_DIR / WEIGHTS_FILE)
    pooler = description.get("pooler", LEGACY_POOLER)
    if config.pooler is not None and config.pooler != pooler:
        raise UsageError(
            f"--pooler {config.pooler}: a {name} run's structure fixes the head (this one: --pooler "
            f"{pooler}); drop --pooler"
        )
    method, fingerprint = build(
        name,
        description.get("options") or {},
        base,
        get_task(task),
        tensors,
        fingerprint=True,
        pooler=pooler,
        revision=revision,
    )
    progress("load", 1, 1)
    hf_config = method.loaded.model.config  # the transformers model inside any wrapper
    metadata = {
        "base_model": display_name(base),
        "task": str(task),
        "architecture": (hf_config.architectures or [type(method.loaded.model).__name__])[0],
        "config": portable_config(hf_config),
        "fingerprint": fingerprint,
        "untouched": {},
        "eligible": sum(tensor.numel() for tensor in method.eligible.values()),
        "method": name,
        "method_options": json.dumps(method.config(), sort_keys=True),
        "pooler": pooler,
        **({"base_revision": revision} if revision else {}),
    }
    if record and record.hyperparameters.get("max_length"):
        metadata["max_length"] = int(record.hyperparameters["max_length"])
    return Delta({}, {}, {}, dict(sorted(tensors.items())), "float32", metadata)


def apply_method(
    config: ApplyConfig, named: list[tuple[str, Delta]], progress: ProgressCallback = no_progress
) -> tuple[str, int | None]:
    """A structural delta on its base -> a model dir `eval` scores like the run (or, with
    `config.merge`, the plain merged model). Returns the task and max length it records."""
    from ..tasks import get_task

    if len(named) != 1:
        raise UsageError("a LoRA/adapter delta does not compose with other deltas; apply it alone")
    source, delta = named[0]
    name, task = str(delta.metadata["method"]), str(delta.metadata.get("task", ""))
    if not task:
        raise MismatchError(f"{source} records no task; re-create it with sparsetune diff")
    try:
        options = json.loads(str(delta.metadata.get("method_options", "{}")))
    except json.JSONDecodeError:
        raise MismatchError(
            f"{source}: metadata method_options is not valid JSON; re-create it with sparsetune diff"
        ) from None
    if not isinstance(options, dict):
        raise MismatchError(
            f"{source}: metadata method_options must be a JSON object, got {str(options)[:40]}; "
            f"re-create it with sparsetune diff"
        )
    from ..methods import get_method
    from ..methods.base import parse_options

    try:
        parse_options(get_method(name).Options, options, name, in_file=True)
    except UsageError as err:
        raise MismatchError(f"{source}: {err}; re-create it with sparsetune diff") from None
    base = config.base or str(delta.metadata.get("base_model", "")) or None
    revision = None if config.base else str(delta.metadata.get("base_revision", "")) or None
    progress("load", 0, 1)
    pooler = str(delta.metadata.get("pooler", LEGACY_POOLER))  # deltas from before the policy: the pooler was eligible
    method, fingerprint = build(
        name, options, base, get_task(task), delta.head, fingerprint=True, pooler=pooler, revision=revision
    )
    progress("load", 1, 1)
    if not config.force:
        delta.check_base(source, fingerprint)
    model = method.merged() if config.merge else method.export()
    with atomic_path(config.output) as tmp, writing(config.output):
        with quiet_transformers():  # no "Writing model shards" bar: our own output says it
            model.save_pretrained(tmp)
            load_tokenizer(base, revision).save_pretrained(tmp)
        if not config.merge:
            method.save_files(tmp)
    max_length = delta.metadata.get("max_length")
    return task, int(max_length) if max_length else None
