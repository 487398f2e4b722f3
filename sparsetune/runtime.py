"""Where and how a model runs: device, precision and processes, all through accelerate.

    sparsetune score --task rte --device cuda --precision bf16
    torchrun --nproc_per_node 2 -m sparsetune train --mask mask.safetensors -o out/

`runtime(device, precision)` is the one place a stage gets its `Accelerator`. Why a
wrapper and not `Accelerator()` at each call site:
- `--device` and `--precision` are checked *before* any model loads, each with a
  one-line error naming the fix (CUDA asked for on a machine without it, fp16 on a CPU).
- On a CPU, accelerate only forms a process group when told `cpu=True`; without it a
  `torchrun` launch silently runs N independent copies that all write the same files.
- accelerate keeps its state in a process-wide singleton that refuses a second,
  different mixed precision. A library is called many times in one process (tests, a
  notebook: score in fp32, then train in bf16), so a single-process state that differs
  from the one asked for is reset; a multi-process one never is (it holds the group).

Mixed precision is autocast: master weights, `values`, optimizer state and SAM's
accumulated gradient stay float32; fp16 adds a loss scale. Files record the precision
(it changes the numbers) but never the device (it does not change what a file means).
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, Sequence, TypeVar

from .errors import SparsetuneError, UsageError

if TYPE_CHECKING:
    import torch

DEVICES = ("auto", "cpu", "cuda", "cuda:N", "mps")
PRECISIONS = ("fp32", "bf16", "fp16")
DEFAULT_DEVICE = "auto"
DEFAULT_PRECISION = "fp32"  # exactness first; bf16 is the fast path (README)
TRACKERS = ("none", "tensorboard", "wandb")
_ACCELERATE_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")

T = TypeVar("T")


def check_device(device: str) -> str:
    """Syntax of `--device` (availability is checked by `resolve_device`)."""
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise UsageError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    return device


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def launched_processes() -> int:
    """Processes of this launch (torchrun / accelerate launch set WORLD_SIZE); 1 otherwise."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def resolve_device(device: str) -> str:
    """`auto` -> cuda, else mps, else cpu; an unavailable device is a one-line error."""
    import torch

    check_device(device)
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if _mps_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(
                f"--device {device}: this PyTorch ({torch.__version__}) sees no CUDA device; "
                "use --device cpu (or auto), or install a CUDA build of torch on a machine with a GPU"
            )
        if ":" in device:
            index = int(device.split(":")[1])
            if index >= torch.cuda.device_count():
                raise UsageError(
                    f"--device {device}: there are {torch.cuda.device_count()} CUDA device(s), numbered from 0"
                )
            if launched_processes() > 1:
                raise UsageError(
                    f"--device {device}: under a multi-process launch each process takes its local GPU; use "
                    "--device cuda"
                )
    if device == "mps" and not _mps_available():
        raise UsageError("--device mps: this PyTorch sees no Apple MPS device; use --device cpu (or auto)")
    return device


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def check_precision_on(precision: str, device: str) -> None:
    """Refuse a precision the (resolved) device cannot run, naming what it can."""
    import torch

    check_precision(precision)
    kind = device.split(":")[0]
    if precision == "fp16" and kind == "cpu":
        raise UsageError(
            "--precision fp16 needs a GPU (fp16 autocast and loss scaling are CUDA features); on a CPU use "
            "--precision bf16"
        )
    if precision == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise UsageError(
            f"--precision bf16: {torch.cuda.get_device_name()} has no bfloat16 support; use --precision fp16"
        )


@dataclass
class Runtime:
    """An `Accelerator` plus the few process-aware helpers the stages share."""

    accelerator: Any
    precision: str

    @property
    def device(self) -> torch.device:
        return self.accelerator.device

    @property
    def processes(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    def barrier(self) -> None:
        self.accelerator.wait_for_everyone()

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over processes, in place on every process (identity for one process)."""
        import torch

        if self.processes > 1:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def any(self, flag: bool) -> bool:
        """True on every process when it is True on any (e.g. a Ctrl-C seen by one rank)."""
        import torch

        if self.processes == 1:
            return flag
        value = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.sum(value).item() > 0)

    def shard(self, items: Sequence[T]) -> list[T]:
        """This process's share of `items`: every N-th, starting at the rank."""
        return list(items[self.rank :: self.processes])

    def send(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from accelerate.utils import send_to_device

        return send_to_device(batch, self.device)

    def agree(self, what: str, settings: Any) -> None:
        """Refuse a launch whose processes were given different flags (they would
        silently train different things and write over each other)."""
        if self.processes == 1:
            return
        from accelerate.utils import gather_object

        digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]
        digests = gather_object([digest])
        if len(set(digests)) > 1:
            ranks = ", ".join(f"rank {rank}: {value}" for rank, value in enumerate(digests))
            raise UsageError(
                f"the {self.processes} processes of this launch were given different {what} flags ({ranks}); "
                "launch every process with the same command"
            )


def check_tracker(report_to: str) -> str:
    """`--report-to`: a known tracker whose package is installed (checked before training)."""
    if report_to not in TRACKERS:
        raise UsageError(f"--report-to must be one of {', '.join(TRACKERS)}, got {report_to!r}")
    if report_to != "none":
        from accelerate.utils import is_tensorboard_available, is_wandb_available

        available = is_tensorboard_available() if report_to == "tensorboard" else is_wandb_available()
        if not available:
            raise SparsetuneError(
                f"--report-to {report_to}: the {report_to} package is not installed; pip install {report_to}"
            )
    return report_to


def runtime(
    device: str = DEFAULT_DEVICE,
    precision: str = DEFAULT_PRECISION,
    report_to: str = "none",
    logging_dir: str | os.PathLike | None = None,
) -> Runtime:
    """The accelerate state for `device` and `precision`, checked, for this process;
    with `report_to`, accelerate's tracker writing under `logging_dir`."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import ProjectConfiguration

    resolved = resolve_device(device)
    check_precision_on(precision, resolved)
    check_tracker(report_to)
    trackers = {}
    if report_to != "none":
        trackers = {
            "log_with": report_to,
            "project_config": ProjectConfiguration(project_dir=str(logging_dir), logging_dir=str(logging_dir)),
        }
    cpu = resolved == "cpu"
    wanted = _ACCELERATE_PRECISION[precision]
    if PartialState._shared_state:
        state = PartialState()
        if state.num_processes == 1 and _differs(state.device, resolved, cpu):
            AcceleratorState._reset_state(reset_partial_state=True)
        elif AcceleratorState._shared_state and AcceleratorState().mixed_precision != wanted:
            AcceleratorState._reset_state(reset_partial_state=False)
    with _explicit_device(resolved):
        try:
            # The schedule is stepped by the loop once per optimizer step of the global
            # batch; accelerate's default would step it once per process.
            accelerator = Accelerator(cpu=cpu, mixed_precision=wanted, step_scheduler_with_optimizer=False, **trackers)
        except ValueError as err:  # accelerate's own refusal, e.g. a precision this device lacks
            raise UsageError(f"--device {device} --precision {precision}: {err}") from None
    if accelerator.device.type == "cuda" and accelerator.device.index is not None:
        import torch

        torch.cuda.set_device(accelerator.device)  # so that a bare "cuda" tensor lands there too
    if accelerator.num_processes > 1:
        _destroy_group_at_exit()
    return Runtime(accelerator=accelerator, precision=precision)


_teardown_registered = False


def _destroy_group_at_exit() -> None:
    """Destroy the process group before the interpreter exits. Left to static
    destruction, gloo's worker threads are destroyed while joinable and the process
    aborts ("terminate called without an active exception", exit -6) after its work is
    done, which the launcher reports as a failed run. No barrier: destroying is local,
    and a barrier would hang the survivors of a rank that exited on an error."""
    global _teardown_registered
    if _teardown_registered:
        return
    _teardown_registered = True

    def destroy() -> None:
        import torch

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()

    atexit.register(destroy)


def is_main_process() -> bool:
    """Rank 0 of a launch, or the only process: the one that prints (before any state exists)."""
    return os.environ.get("RANK", "0") in ("", "0")


def _differs(current: torch.device, resolved: str, cpu: bool) -> bool:
    if cpu:
        return current.type != "cpu"
    if ":" in resolved:
        return str(current) != resolved and not (
            current.type == "cuda" and current.index is None and resolved == "cuda:0"
        )
    return current.type != resolved


@contextmanager
def _explicit_device(resolved: str) -> Iterator[None]:
    """accelerate picks `cuda` (the current device) for one process; `cuda:N` asks for N."""
    if ":" not in resolved:
        yield
        return
    previous = os.environ.get("ACCELERATE_TORCH_DEVICE")
    os.environ["ACCELERATE_TORCH_DEVICE"] = resolved
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("ACCELERATE_TORCH_DEVICE", None)
        else:
            os.environ["ACCELERATE_TORCH_DEVICE"] = previous
