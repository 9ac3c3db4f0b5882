"""python benchmarks/bench_train.py --dataset ../shared/data/imdb_train.parquet

Training throughput of `sentiment train` (LoRA on the bundled MiniLM, real reviews, head+tail 256
tokens, batch 16) on this machine, fp32 against bf16 autocast, measured by the trainer itself.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

from review_sentiment.cli import main as sentiment


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--steps", type=int, default=25, help="optimizer steps per precision")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/train.json"))
    args = parser.parse_args()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    rows = []
    for precision in args.precisions:
        with tempfile.TemporaryDirectory() as tmp:
            code = sentiment(
                [
                    "train",
                    "--base-model",
                    "minilm",
                    "--dataset",
                    args.dataset,
                    "--output",
                    tmp + "/run",
                    "--max-samples",
                    "2000",
                    "--epochs",
                    "1",
                    "--eval-every",
                    "0",
                    "--batch-size",
                    "16",
                    "--precision",
                    precision,
                    "--stop-after-steps",
                    str(args.steps),
                    "--log-every",
                    "5",
                ]
            )
            assert code == 0
            training = json.loads(Path(tmp, "run", "metrics.json").read_text())["training"]
        rows.append(
            {"precision": precision, "dtype": training["dtype"], "reviews_per_s": training["reviews_per_second"]}
        )
        print(f"{precision}: {training['reviews_per_second']:.2f} reviews/s ({training['dtype']})", flush=True)
    report = {"cpu": cpu, "date": time.strftime("%Y-%m-%d"), "steps": args.steps, "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
