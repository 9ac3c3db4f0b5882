"""python benchmarks/bench_load.py --clients 20 --seconds 60

The app under load: `--clients` gradio_client clients (threads, loopback only) call the app started by
`python -m review_sentiment.app` (the bundled model unless --model) back to back for `--seconds`, each
sending /predict with a short review and, every `--analyze-every`-th call, /analyze with an explained
one. Reports calls, errors, and p50/p95/max latency per endpoint, measured from the client (queue
waiting included). Nothing leaves 127.0.0.1; the number of clients is the only load there is.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
from gradio_client import Client

from review_sentiment.app.ui import EXAMPLES, serve_in_background


def client_loop(url: str, deadline: float, analyze_every: int, results: list, lock: threading.Lock) -> None:
    """One visitor: calls until the deadline; every call's endpoint, latency and error go to `results`."""
    client = Client(url, verbose=False)
    calls = 0
    while time.monotonic() < deadline:
        calls += 1
        endpoint, text = ("/analyze", EXAMPLES[3]) if calls % analyze_every == 0 else ("/predict", EXAMPLES[0])
        started = time.perf_counter()
        error = None
        try:
            client.predict(text, api_name=endpoint)
        except Exception as failure:  # every failure counts, whatever its kind
            error = f"{type(failure).__name__}: {str(failure)[:200]}"
        with lock:
            results.append({"endpoint": endpoint, "ms": 1000 * (time.perf_counter() - started), "error": error})


def summarize(results: list[dict], seconds: float) -> list[dict]:
    """Per endpoint: calls, errors, calls per second, and latency percentiles of the calls that succeeded."""
    rows = []
    for endpoint in sorted({r["endpoint"] for r in results}):
        calls = [r for r in results if r["endpoint"] == endpoint]
        times = [r["ms"] for r in calls if r["error"] is None]
        rows.append(
            {
                "endpoint": endpoint,
                "calls": len(calls),
                "errors": sum(r["error"] is not None for r in calls),
                "calls_per_s": round(len(calls) / seconds, 2),
                "p50_ms": round(float(np.percentile(times, 50)), 1) if times else None,
                "p95_ms": round(float(np.percentile(times, 95)), 1) if times else None,
                "max_ms": round(float(max(times)), 1) if times else None,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported folder (default: the bundled model)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--analyze-every", type=int, default=5, help="every Nth call of a client is /analyze")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/load.json"))
    args = parser.parse_args()
    process, url = serve_in_background(env={"SENTIMENT_MODEL": args.model} if args.model else None)
    results: list[dict] = []
    lock = threading.Lock()
    try:
        deadline = time.monotonic() + args.seconds
        threads = [
            threading.Thread(target=client_loop, args=(url, deadline, args.analyze_every, results, lock))
            for _ in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = summarize(results, args.seconds)
    errors = sorted({r["error"] for r in results if r["error"]})
    for row in rows:
        print(row, flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "clients": args.clients,
        "seconds": args.seconds,
        "results": rows,
        "error_kinds": errors[:10],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
