"""python benchmarks/bench_trials.py --dataset ../shared/data/imdb_train.parquet --reviews 4000

Training choices for the default model, each on the same fixed budget: the bundled MiniLM-L6 sees the
same number of training reviews (`--reviews`, drawn by the trainer's seeded shuffle of its training
split) at 256 tokens, bf16, batch 16, and is judged once at the end on all of the trainer's seeded
stratified 10% hold-out. The budget is counted in reviews, not minutes, so that the table does not
depend on what else the machine runs; the seconds each trial took are reported beside it. Trials: the
product's LoRA defaults, attention-only LoRA, LoRA rank 8, three learning rates, a cosine
schedule, and full fine-tuning of every weight at two learning rates.

Each run's folder (`--work`, not committed) keeps its metrics.json, and a copy goes to
benchmarks/results/trials/. A trial that completed with the same command is not run again, and one that
was stopped (Ctrl-C, --time-limit) is resumed from its checkpoint, never reported: the script can be
stopped and started. Rows measured with another budget or dataset are measured again.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import pandas as pd
from bench_common import cpu_model, write_report  # this folder is on sys.path when run as a script

from review_sentiment.cli import main as sentiment

BATCH = 16
ATTENTION_ONLY = "query,key,value,attention.output.dense"
TRIALS = {
    "lora (defaults)": [],
    "lora, attention only": ["--lora-targets", *ATTENTION_ONLY.split(",")],
    "lora, rank 8": ["--lora-r", "8", "--lora-alpha", "16"],
    "lora, lr 1e-4": ["--lr", "1e-4"],
    "lora, lr 1e-3": ["--lr", "1e-3"],
    "lora, cosine": ["--schedule", "cosine"],
    "full, lr 5e-5": ["--method", "full", "--lr", "5e-5"],
    "full, lr 1e-4": ["--method", "full", "--lr", "1e-4"],
}


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name).strip("-").replace("--", "-")


def train_command(data: Path, output: Path, epochs: float, extra: list[str], time_limit: float) -> list[str]:
    return [
        "train",
        *("--base-model", "minilm", "--dataset", str(data), "--output", str(output)),
        *("--epochs", f"{epochs:.4f}", "--batch-size", str(BATCH), "--precision", "bf16", "--seed", "42"),
        *("--eval-every", "0", "--patience", "0", "--checkpoint-every", "50", "--log-every", "50"),
        *("--time-limit", f"{time_limit:g}"),
        *extra,
    ]


def run_trial(name: str, data: Path, args: argparse.Namespace, train_rows: int) -> dict:
    output = args.work / slug(name)
    command = train_command(data, output, args.reviews / train_rows, TRIALS[name], args.time_limit)
    stamp = args.work / f"{slug(name)}.command.json"  # beside the run: the trainer wants its folder new
    same = stamp.is_file() and _budgeted(json.loads(stamp.read_text())) == _budgeted(command)
    if not (same and _stop_reason(output) == "completed"):
        # A run stopped by --time-limit or Ctrl-C has a metrics.json too: it is resumed, never reported.
        resume = same and (output / "checkpoint").is_dir()
        if output.exists() and not resume:
            shutil.rmtree(output)
        stamp.write_text(json.dumps(command))
        print(f"[{name}] sentiment " + " ".join(command), flush=True)
        if sentiment([*command, "--resume"] if resume else command) != 0:
            raise SystemExit(f"[{name}] training failed")
        if _stop_reason(output) != "completed":
            raise SystemExit(f"[{name}] stopped early ({_stop_reason(output)}): run the script again to resume it")
    metrics = json.loads((output / "metrics.json").read_text())
    kept = args.out.parent / "trials" / f"{slug(name)}.metrics.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(output / "metrics.json", kept)
    training = metrics["training"]
    return {
        "trial": name,
        "options": " ".join(TRIALS[name]) or "(defaults)",
        "accuracy": metrics["accuracy"],
        "macro_f1": metrics["macro_f1"],
        "roc_auc": metrics["roc_auc"],
        "ece": metrics["ece"],
        "val_loss": metrics["val_loss"],
        "validation_reviews": metrics["count"],
        "trainable_parameters": training.get("trainable_parameters") or _adapter_parameters(output),
        "train_seconds": training["train_seconds"],
        "steps": training["steps"],
        "reviews_seen": training["steps"] * BATCH,  # every step a full batch: less than one epoch
        "stop_reason": training["stop_reason"],
        "training_reviews": args.reviews,
        "dataset": str(data),
        "metrics_file": str(kept),
    }


def _budgeted(command: list[str]) -> list[str]:
    """The command without --time-limit, which a resumed run may change (it decides nothing of the result)."""
    at = command.index("--time-limit")
    return command[:at] + command[at + 2 :]


def _stop_reason(output: Path) -> str | None:
    metrics = output / "metrics.json"
    return json.loads(metrics.read_text())["training"]["stop_reason"] if metrics.is_file() else None


def _adapter_parameters(output: Path) -> int:
    """What a LoRA run trained, counted from its saved adapter (LoRA matrices and the classifier head), for
    runs from before metrics.json recorded it."""
    from safetensors import safe_open

    with safe_open(output / "adapter" / "adapter_model.safetensors", "np") as weights:
        return sum(math.prod(weights.get_slice(name).get_shape()) for name in weights.keys())  # noqa: SIM118 (not a dict)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--reviews", type=int, default=4000, help="training reviews per trial (the budget)")
    parser.add_argument("--time-limit", type=float, default=45.0, help="minutes; stops a trial far slower than usual")
    parser.add_argument("--work", type=Path, default=Path("runs/trials"), help="run folders (not committed)")
    parser.add_argument("--trials", nargs="+", default=list(TRIALS), choices=list(TRIALS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/trials.json"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    train_rows = _train_rows(args.dataset)
    previous = json.loads(args.out.read_text())["results"] if args.out.is_file() else []
    # Rows of another budget or dataset would be labelled with this run's: they are measured again.
    same_budget = lambda row: (row.get("training_reviews"), row.get("dataset")) == (args.reviews, str(args.dataset))  # noqa: E731
    rows = {row["trial"]: row for row in previous if row["trial"] in TRIALS and same_budget(row)}
    for name in args.trials:
        rows[name] = run_trial(name, args.dataset, args, train_rows)
        report = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": cpu_model(),
            "training_reviews": args.reviews,
            "dataset": str(args.dataset),
            "results": [rows[n] for n in TRIALS if n in rows],
        }
        write_report(args.out, report)


def _train_rows(dataset: Path) -> int:
    """Rows in the trainer's training split: 90% of the distinct non-empty reviews (its 10% hold-out aside)."""
    frame = pd.read_parquet(dataset, columns=["text"])
    distinct = frame["text"].dropna().str.strip().replace("", None).dropna().drop_duplicates()
    return len(distinct) - round(len(distinct) * 0.1)


if __name__ == "__main__":
    main()
