"""The sweep behind the per-task defaults for the embedded MiniLM (`sparsetune/defaults.py`).

    python benchmarks/sweep_defaults.py --data-dir ../shared/data --tasks cb copa --lrs 1e-4 1e-3 5e-3 --epochs 8

Protocol (Fu et al. 2023, arXiv 2211.15583): a SAM mask at p = 0.005 scored on the train
part, sparse training, model selection on the held-out dev part of train (10%, seed
42). The validation split (the test set) is never read. For each task and lr it reports
the best dev score and the epoch where it was reached; one thread per process so that
the numbers are not distorted by OpenMP contention on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--tasks", nargs="+", default=["cb", "copa"])
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-4, 1e-3, 5e-3])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("-p", type=float, default=0.005)
    args = parser.parse_args()

    import torch

    from sparsetune import score, train
    from sparsetune.config import ScoreConfig, TrainConfig

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for task in args.tasks:
            mask = Path(tmp) / f"{task}.safetensors"
            score(
                ScoreConfig(
                    task=task,
                    p=args.p,
                    data_dir=args.data_dir,
                    batch_size=args.batch_size,
                    max_length=args.max_length,
                    output=str(mask),
                )
            )
            for lr in args.lrs:
                out = Path(tmp) / f"{task}-{lr}"
                record = train(
                    TrainConfig(
                        output=str(out),
                        mask=str(mask),
                        data_dir=args.data_dir,
                        lr=lr,
                        epochs=args.epochs,
                        batch_size=args.batch_size,
                        max_length=args.max_length,
                    )
                )
                per_epoch = [
                    json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"dev"' in line
                ]
                print(
                    json.dumps(
                        {
                            "task": task,
                            "lr": lr,
                            "epochs": args.epochs,
                            "batch_size": args.batch_size,
                            "max_length": args.max_length,
                            "best_dev_score": record.best["score"],
                            "best_epoch": per_epoch[[e["step"] for e in per_epoch].index(record.best["step"])]["epoch"],
                            "dev_scores": [round(e["dev"]["score"], 4) for e in per_epoch],
                            "seconds": record.seconds,
                        }
                    ),
                    flush=True,
                )


if __name__ == "__main__":
    main()
