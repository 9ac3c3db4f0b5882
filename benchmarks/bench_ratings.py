"""python benchmarks/bench_ratings.py --dataset ../shared/data/imdb_train.parquet --minutes 30

Star ratings instead of positive/negative: the IMDB rating column (1-4 and 7-10) learned as 8 classes
and as 4 buckets (1-2, 3-4, 7-8, 9-10, named 1-4 so that they keep their order), each with the same
fixed budget of LoRA training on the bundled MiniLM on this CPU and the trainer's seeded, stratified
hold-out. The budget is a fixed number of training reviews, sized from the minutes and a measured
uncontended speed (`--reviews-per-s`), so the figures do not depend on what else the machine runs;
`--time-limit` (3x the minutes) only stops a run that is far slower than that. Reports accuracy, macro F1, mean absolute error (in
rating points for 8 classes, in buckets for 4) and the share within one class, from each run's
metrics.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
from bench_common import cpu_model, write_report  # this folder is on sys.path when run as a script

from review_sentiment.cli import main as sentiment

BUCKETS = {1: 1, 2: 1, 3: 2, 4: 2, 7: 3, 8: 3, 9: 4, 10: 4}
TASKS = {
    "8 classes": ("rating", "1,2,3,4,7,8,9,10", "the rating itself"),
    "4 buckets": ("bucket", "1,2,3,4", "1-2 → 1, 3-4 → 2, 7-8 → 3, 9-10 → 4"),
}


def task_data(dataset: Path, folder: Path) -> Path:
    """The reviews with their rating and its bucket, in one Parquet file the runs read."""
    frame = pd.read_parquet(dataset, columns=["text", "rating"])
    frame["bucket"] = frame["rating"].map(BUCKETS)
    path = folder / "ratings.parquet"
    frame.to_parquet(path, index=False)
    return path


def train_command(data: Path, output: Path, column: str, labels: str, epochs: float, minutes: float) -> list[str]:
    return [
        "train",
        *("--base-model", "minilm", "--dataset", str(data), "--text-column", "text"),
        *("--label-column", column, "--labels", labels, "--output", str(output)),
        *("--epochs", f"{epochs:.3f}", "--lr", "5e-4", "--batch-size", "16", "--precision", "bf16"),
        *("--eval-every", "0", "--patience", "0", "--checkpoint-every", "100", "--log-every", "50"),
        *("--time-limit", f"{minutes * 3:g}", "--overwrite"),
    ]


def run_task(name: str, data: Path, root: Path, args: argparse.Namespace, train_rows: int) -> dict:
    column, labels, meaning = TASKS[name]
    epochs = args.minutes * 60 * args.reviews_per_s / train_rows
    command = train_command(data, root / column, column, labels, epochs, args.minutes)
    print("sentiment " + " ".join(command), flush=True)
    assert sentiment(command) == 0
    metrics = json.loads((root / column / "metrics.json").read_text())
    validation = metrics  # the final evaluation on the hold-out, with the best weights
    return {
        "task": name,
        "labels": labels.split(","),
        "meaning": meaning,
        "command": "sentiment " + " ".join(command),
        "train_seconds": metrics["training"]["train_seconds"],
        "epochs_completed": metrics["training"]["epochs_completed"],
        "stop_reason": metrics["training"]["stop_reason"],
        "accuracy": validation["accuracy"],
        "macro_f1": validation["macro_f1"],
        "mean_absolute_error": validation["mean_absolute_error"],
        "within_one_class": validation["within_one_class"],
        "majority_share": validation["majority_share"],
        "validation_reviews": validation["count"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per task")
    parser.add_argument("--reviews-per-s", type=float, default=9.0, help="measured bf16 training speed here")
    parser.add_argument("--work", type=Path, default=Path("runs/ratings"), help="runs and data (not committed)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ratings.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    data = task_data(args.dataset, args.work)
    train_rows = round(len(pd.read_parquet(data, columns=["rating"])) * 0.9)
    rows = [run_task(name, data, args.work, args, train_rows) for name in args.tasks]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": cpu_model(),
        "minutes": args.minutes,
        "training_reviews": round(args.minutes * 60 * args.reviews_per_s),
        "results": rows,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
