"""python benchmarks/bench_app.py

App latency over HTTP with gradio_client against `python -m review_sentiment.app` (the bundled model
unless --model): p50/p95 of /predict (one review) and /analyze (one review with its explanation),
for a short review and a 300-word one; beside each, the same work done in-process with no server
(`model_p50_ms`: the scorer alone for /predict, scorer + explanation for /analyze), so the HTTP and
queue overhead is the difference.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from bench_common import cpu_model  # this folder is on sys.path when run as a script
from gradio_client import Client

from review_sentiment.app.explain import explain
from review_sentiment.app.ui import EXAMPLES, analyze, serve_in_background
from review_sentiment.scorer import Scorer

LONG = " ".join(EXAMPLES[4].split()[:300])


def latency(client: Client, endpoint: str, text: str, repeats: int) -> dict:
    client.predict(text, api_name=endpoint)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.predict(text, api_name=endpoint)
        times.append(1000 * (time.perf_counter() - started))
    return {"p50_ms": round(float(np.percentile(times, 50)), 1), "p95_ms": round(float(np.percentile(times, 95)), 1)}


def in_process(scorer: Scorer, endpoint: str, text: str, repeats: int) -> float:
    """p50 ms of the model work behind an endpoint, called directly."""
    work = (lambda: scorer.predict(text)) if endpoint == "/predict" else (lambda: analyze(scorer, text))
    work()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(1000 * (time.perf_counter() - started))
    return round(float(np.percentile(times, 50)), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported folder (default: the bundled model)")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/app.json"))
    args = parser.parse_args()
    scorer = Scorer.load(args.model)
    process, url = serve_in_background(env={"SENTIMENT_MODEL": args.model} if args.model else None)
    try:
        client = Client(url, verbose=False)
        rows = []
        for name, text in (
            (f"short review ({len(EXAMPLES[0].split())} words)", EXAMPLES[0]),
            (f"long review ({len(LONG.split())} words)", LONG),
        ):
            for endpoint in ("/predict", "/analyze"):
                row = {"input": name, "endpoint": endpoint, **latency(client, endpoint, text, args.repeats)}
                row["model_p50_ms"] = in_process(scorer, endpoint, text, args.repeats)
                if endpoint == "/analyze":
                    explained = explain(scorer, text)
                    row["units"] = f"{len(explained.spans)} × {explained.granularity}, {explained.tokens} tokens"
                rows.append(row)
                print(
                    f"{name:<26} {endpoint:<9} p50 {row['p50_ms']:7.1f} ms  p95 {row['p95_ms']:7.1f} ms  "
                    f"model alone p50 {row['model_p50_ms']:7.1f} ms",
                    flush=True,
                )
    finally:
        process.terminate()
        process.wait(timeout=30)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{cpu_model()}, {os.cpu_count()} cores",
                "repeats": args.repeats,
                "results": rows,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
