"""The `score` stage: pretrained model + train data -> scores -> mask file.

    sparsetune score --task rte -p 0.005 -o mask.safetensors --save-scores scores.safetensors
    sparsetune mask scores.safetensors -p 0.01 -o mask-1pc.safetensors

`score` runs one registered scorer over the *train part* of the protocol split (the
held-out dev part and the test set are never seen) and writes a mask whose metadata
lets `sparsetune train --mask` run with no other flag. `rethreshold` turns saved
scores into a mask at another p without a gradient pass.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import DEFAULT_SCOPE, DEFAULT_SPARSITY, MAX_SEED, MaskConfig, ScoreConfig, check_scope
from ..data import global_batches, load_task_data, make_loader
from ..errors import NumericalError, UsageError
from ..formats.mask import Mask, base_digest, check_fraction
from ..formats.scores import Scores
from ..io import check_not_an_input, check_writable, refuse_to_overwrite
from ..models import (
    check_max_length,
    check_pooler,
    display_name,
    head_metadata,
    load_model,
    load_tokenizer,
    module_type,
    resolve_model,
)
from ..progress import ProgressCallback, no_progress
from ..runtime import check_device, check_precision, runtime
from ..scoring import SCORERS, get_scorer
from ..scoring.base import ScoringContext
from ..tasks import get_task


@dataclass
class ScoreResult:
    """The mask, the scores it came from, and what the run saw and cost."""

    mask: Mask
    scores: dict[str, torch.Tensor] = field(repr=False)  # one float per eligible entry: too many to print
    head: dict[str, int]  # head tensor (new, + the pooler with pooler="head") -> entries; always trained, never in p
    examples: int
    examples_available: int
    seconds: float  # whole call: loading, data pass, selection, writing
    pass_seconds: float  # the data pass alone
    output: str | None = None
    scores_output: str | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready: selected / eligible, p, examples, seconds, examples/s, share per module type."""
        meta = self.mask.metadata
        return {
            "model": meta.get("model"),
            "task": meta.get("task"),
            "method": meta.get("method"),
            "p": meta.get("p"),
            "scope": meta.get("scope"),
            "selected": self.mask.selected,
            "eligible": self.mask.eligible,
            "density": self.mask.density,
            "pooler": meta.get("pooler"),
            "head_parameters": sum(self.head.values()),
            "head_tensors": sorted(self.head),
            "examples": self.examples,
            "examples_available": self.examples_available,
            "seconds": round(self.seconds, 3),
            "examples_per_second": round(self.examples / self.pass_seconds, 3) if self.pass_seconds > 0 else None,
            "share_by_module_type": share_by_module_type(self.mask),
            "output": self.output,
            "scores_output": self.scores_output,
            "notes": list(self.notes),
        }


def share_by_module_type(mask: Mask) -> dict[str, float]:
    """Fraction of the selected entries that falls in each module type (sums to 1)."""
    counts: dict[str, int] = {}
    for name, (selected, _) in mask.per_tensor().items():
        counts[module_type(name)] = counts.get(module_type(name), 0) + selected
    total = sum(counts.values()) or 1
    return {kind: count / total for kind, count in sorted(counts.items(), key=lambda item: -item[1]) if count}


def task_reference(task: str) -> str:
    """How the task is recorded: its name, or the absolute path of a custom task's .json."""
    path = Path(task)
    return str(path.resolve()) if task.endswith(".json") and path.is_file() else get_task(task).name


def _check(config: ScoreConfig) -> None:
    """Every flag checked before the model loads, so mistakes cost no time."""
    if config.p is not None:
        check_fraction(config.p)
    check_device(config.device)
    check_precision(config.precision)
    check_pooler(config.pooler)
    check_scope(config.scope)
    if config.examples is not None and config.examples < 1:
        raise UsageError(f"--examples must be a positive number or 'all', got {config.examples}")
    if config.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {config.batch_size}")
    if config.max_length < 1:  # as train and eval: the tokenizer keeps the special tokens
        raise UsageError(f"--max-length must be at least 1, got {config.max_length}")
    if not 0 <= config.seed <= MAX_SEED:
        raise UsageError(f"--seed must be in [0, {MAX_SEED}], got {config.seed}")
    if config.output and config.save_scores and Path(config.output).resolve() == Path(config.save_scores).resolve():
        raise UsageError("-o and --save-scores name the same file; give the scores another name")
    for path, flag in ((config.output, "-o"), (config.save_scores, "--save-scores")):
        if path is not None:  # None: kept in memory; "" names no file
            if str(path).strip() and Path(path).is_dir():
                raise UsageError(f"{flag} {path} is a directory; give a file name such as mask.safetensors")
            refuse_to_overwrite(path, config.force, what=flag)
            check_not_an_input(path, [resolve_model(config.model), config.data_dir], flag)
            check_writable(path, flag)  # fail now, not after the data pass


def _scoring_rows(config: ScoreConfig, task, notes: list[str]):
    """The train part of the protocol split, or a seeded subset of `config.examples` rows."""
    train = load_task_data(task, config.data_dir, config.dev_fraction, config.seed).train
    available = len(train)
    if config.examples is None or config.examples >= available:
        if config.examples is not None and config.examples > available:
            notes.append(f"--examples {config.examples} asked, the train part has {available}: using all {available}")
        return train, available
    generator = torch.Generator().manual_seed(config.seed)
    chosen = torch.randperm(available, generator=generator)[: config.examples].sort().values.tolist()
    return train.select(chosen), available


def score(config: ScoreConfig, progress: ProgressCallback = no_progress) -> ScoreResult:
    """Score every eligible entry with `config.method`, keep the top ⌊m·p⌋, write the mask.

    On `config.device` in `config.precision`; under a multi-process launch the batches
    are sharded, the scorer's sums are reduced over processes, and only the main
    process writes (every process returns the same result).
    """
    started = time.perf_counter()
    _check(config)
    rt = runtime(config.device, config.precision)
    rt.agree("score", asdict(config))
    progress = (progress or no_progress) if rt.is_main else no_progress  # None, as before, means none
    scorer = get_scorer(config.method)
    task = get_task(config.task)
    notes: list[str] = []
    loaded = load_model(config.model, task, seed=config.seed, pooler=config.pooler, revision=config.revision)
    loaded.model = rt.accelerator.prepare_model(loaded.model, evaluation_mode=True)  # device + autocast, no DDP
    batches, examples, available, num_batches = None, 0, 0, 0
    if scorer.needs_data:
        check_max_length(loaded.model, config.max_length)
        rows, available = _scoring_rows(config, task, notes)
        examples = len(rows)
        every = global_batches(range(examples), config.batch_size)
        num_batches = len(every)
        batches = make_loader(
            rows,
            task,
            load_tokenizer(config.model, config.revision),
            config.batch_size,
            config.max_length,
            batches=rt.shard(every),
        )
    context = ScoringContext(
        loaded=loaded,
        batches=batches,
        num_batches=num_batches,
        num_examples=examples,
        seed=config.seed,
        progress=progress,
        send=rt.send,
        reduce_sum=rt.sum,
        loss_scale=_loss_scale(config.precision, examples if scorer.weighs_by_share else 0, config.batch_size),
    )
    pass_started = time.perf_counter()
    scores = scorer.compute(context)
    pass_seconds = time.perf_counter() - pass_started
    scores = {name: value.cpu() for name, value in scores.items()}
    _check_scores(scores, f"--method {scorer.name}")
    metadata = {
        "model": display_name(config.model),
        "task": task_reference(config.task),
        "method": scorer.name,
        "examples": examples,
        "seed": config.seed,
        "dev_fraction": config.dev_fraction,
        "max_length": config.max_length,
        "batch_size": config.batch_size,
        "precision": config.precision,
        **head_metadata(loaded),
        **({"revision": config.revision} if config.revision else {}),
        **({"model_commit": loaded.commit} if loaded.commit else {}),
        "base_sha256": base_digest(loaded.eligible()),
    }
    p = DEFAULT_SPARSITY if config.p is None else config.p
    mask = scorer.select(scores, p, config.scope, metadata)
    if config.p is not None and (ignored := ignored_p(scorer.name, config.p)):
        notes.append(f"{ignored} (density {mask.density:.6g})")
    mask.validate_against(loaded.eligible())
    if rt.is_main:
        if config.save_scores:
            # The scope it was selected with: `sparsetune mask` re-thresholds in the same one by default.
            Scores.from_mapping(scores, {**metadata, "scope": config.scope}).save(config.save_scores)
        if config.output:
            mask.save(config.output)
    rt.barrier()  # no process returns before the files exist
    return ScoreResult(
        mask=mask,
        scores=scores,
        head={name: parameter.numel() for name, parameter in loaded.head().items()},
        examples=examples,
        examples_available=available,
        seconds=time.perf_counter() - started,
        pass_seconds=pass_seconds,
        output=config.output,
        scores_output=config.save_scores,
        notes=notes,
    )


def _check_scores(scores: dict[str, torch.Tensor], source: str) -> None:
    """Refuse scores that rank nothing: NaN or infinite values (a diverged pass), or all
    zero (a loss with no gradient here), which would select entries by position alone."""
    for name, value in scores.items():
        if not bool(torch.isfinite(value).all()):
            raise NumericalError(
                f"{source}: the scores of {name} hold NaN or infinite values; the gradient pass diverged "
                "(use --precision fp32, a smaller --max-length or --batch-size)"
            )
    if not any(bool(value.any()) for value in scores.values()):
        raise NumericalError(
            f"{source}: every score is 0, so the scores rank no entry above another (the loss has no "
            "gradient on these examples?); a mask from them would be chosen by position alone"
        )


def _loss_scale(precision: str, examples: int, batch_size: int) -> float:
    """fp16 only: a power of two lifting each batch's weighted loss to about 2^8, so that
    its gradients stay in fp16's normal range: 2^8 · examples/batch for a loss weighted
    by its share (≈ batch/examples), 2^8 for one weighted by 1 (`examples` 0). Sized for
    SAM's weights, fisher's unweighted losses were scaled examples/batch times more (2^17
    on cola): a data set 16 times cola's would have overflowed for no reason."""
    if precision != "fp16":
        return 1.0
    return float(2 ** (8 + max(0, round(math.log2(max(1.0, examples / batch_size))))))


def ignored_p(method: str, p: float) -> str | None:
    """The note for a -p that a scorer which selects its own entries (bitfit) ignores, or None."""
    if method in SCORERS and SCORERS[method].fixed_selection:
        return f"--method {method} selects its own entries: -p {p} is ignored"
    return None


def rethreshold(config: MaskConfig) -> Mask:
    """A mask at `config.p` from a saved scores file: no model, no data, no gradients."""
    check_fraction(config.p)
    if config.scope is not None:
        check_scope(config.scope)
    if config.output is not None:  # None: kept in memory; "" names no file
        refuse_to_overwrite(config.output, config.force, what="-o")
        check_not_an_input(config.output, [config.scores])
        check_writable(config.output, "-o")
    saved = Scores.load(config.scores)
    _check_scores(saved.tensors, str(config.scores))
    metadata = {key: value for key, value in saved.metadata.items() if key != "sparsetune_version"}
    scope = config.scope or str(metadata.get("scope", DEFAULT_SCOPE))
    method = str(metadata.get("method", ""))
    scorer = SCORERS[method]() if method in SCORERS else None
    select = scorer.select if scorer is not None else Mask.from_scores
    mask = select(saved.tensors, config.p, scope, metadata)
    if config.output:
        mask.save(config.output)
    return mask
