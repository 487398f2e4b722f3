"""`OUT/run.json`: what a training run was and what it scored.

It is how `eval OUT/` and `diff OUT/` need no repeated flags: the base model, the task
and the method are read from here. Test metrics are added by `eval`. Every save also
rewrites the model card, `OUT/README.md` (`formats.model_card`).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileFormatError, UsageError
from ..io import write_json
from .model_card import write_card
from .schema import RUN_RECORD, validate

FORMAT = "sparsetune.run"
VERSION = "1"
RUN_FILE = "run.json"


@dataclass
class RunRecord:
    base_model: str
    task: str
    method: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    mask_sha256: str | None = None
    trainable_parameters: dict[str, Any] = field(default_factory=dict)
    best: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    seconds: float | None = None
    sparsetune_version: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def save(self, run_dir: str | os.PathLike) -> None:
        """run.json, then the model card rendered from it (README.md)."""
        write_json(Path(run_dir) / RUN_FILE, {"format": FORMAT, "version": VERSION, **asdict(self)})
        write_card(run_dir, self)

    @classmethod
    def load(cls, run_dir: str | os.PathLike) -> "RunRecord":
        path = Path(run_dir) / RUN_FILE
        if not path.is_file():
            raise UsageError(f"{run_dir} is not a sparsetune run (no {RUN_FILE}); pass --task (and --base) for a plain model dir")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise FileFormatError(f"{path} is not valid JSON ({err})") from None
        if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
            raise FileFormatError(f"{path} is not a sparsetune run record")
        data.pop("version", None)
        validate(data, RUN_RECORD, str(path), hint="; restore it, or retrain the run")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except TypeError as err:
            raise FileFormatError(f"{path} is missing fields ({err})") from None


def is_run_dir(path: str | os.PathLike) -> bool:
    return (Path(path) / RUN_FILE).is_file()
