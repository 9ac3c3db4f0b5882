"""python benchmarks/bench_memory.py --rows 10000 100000

Peak resident memory of `score-csv` (the bundled model unless --model) on generated CSVs of different
lengths: streaming means the peak should not grow with the number of rows.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OPENINGS = [
    "I watched this last night",
    "My partner picked this one",
    "I had heard mixed things",
    "Saw it in an empty cinema",
]
VERDICTS = [
    "and it was a delight from start to finish",
    "and it was a tedious, muddled mess",
    "and the cast carried a thin script",
    "and the ending ruined everything before it",
    "and I would happily watch it again",
    "and I checked my watch every ten minutes",
]
DETAILS = [
    "The score is lovely.",
    "The dialogue is clumsy.",
    "The photography is gorgeous.",
    "The pacing drags.",
    "The lead is superb.",
    "The jokes fall flat.",
    "The twist is clever.",
    "The effects look cheap.",
]


def write_reviews(path: Path, rows: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as handle:
        handle.write("id,review\n")
        for i in range(rows):
            text = f"{rng.choice(OPENINGS)} {rng.choice(VERDICTS)}. " + " ".join(rng.sample(DETAILS, 3))
            handle.write(f'{i},"{text}"\n')


def peak_rss_mb(command: list[str]) -> tuple[float, float]:
    """Peak RSS of a child process (fresh parent, so the maximum is that child's alone) and its run time."""
    probe = (
        "import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", probe, *command], capture_output=True, text=True, check=True).stdout
    rss, seconds = out.split()
    return float(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--model", help="exported folder (default: the bundled model)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/memory.json"))
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for rows in args.rows:
            source = Path(tmp) / f"reviews-{rows}.csv"
            write_reviews(source, rows)
            # `python -m review_sentiment.batch` is score-csv, found without an activated virtual environment.
            command = [
                sys.executable,
                "-m",
                "review_sentiment.batch",
                str(source),
                "--output",
                str(Path(tmp) / f"scored-{rows}.csv"),
            ]
            if args.model:
                command += ["--model", args.model]
            rss, seconds = peak_rss_mb(command)
            results.append(
                {
                    "rows": rows,
                    "input_mb": round(source.stat().st_size / 1e6, 1),
                    "peak_rss_mb": round(rss, 1),
                    "seconds": round(seconds, 1),
                    "rows_per_s": round(rows / seconds, 1),
                }
            )
            print(f"{rows:>8} rows ({results[-1]['input_mb']} MB): peak RSS {rss:.0f} MB, {seconds:.0f} s", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "results": results}, indent=2))


if __name__ == "__main__":
    main()
