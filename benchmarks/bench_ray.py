"""python benchmarks/bench_ray.py --dataset ../shared/data/imdb_train.parquet --rows 2000

`score-csv --engine ray` on simulated clusters of 1-CPU nodes (`ray.cluster_utils.Cluster`: every node a
raylet of its own on this machine) against the local engine on the same four CSV files of real reviews,
with the bundled model: rows/s, the rows each node scored, whether every label equals the local
engine's, and a run in which the worker node is removed mid-run. On one 2-core machine the nodes share
the same two cores, so this measures the engine's overhead and how evenly it spreads the rows, not a
speed-up. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import ray
from bench_common import cpu_model, write_report  # this folder is on sys.path when run as a script
from ray.cluster_utils import Cluster

from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.score_file import score_file

FILES = 4


def write_inputs(dataset: Path, rows: int, folder: Path) -> Path:
    """`rows` reviews (a seeded sample) in FILES CSV files, with an id that gives their order."""
    frame = pd.read_parquet(dataset, columns=["text"]).sample(rows, random_state=0).reset_index(drop=True)
    frame.insert(0, "review_id", range(rows))
    inputs = folder / "reviews"
    inputs.mkdir()
    for i, part in enumerate(frame.groupby(frame.index * FILES // rows)):
        part[1].to_csv(inputs / f"part-{i}.csv", index=False)
    return inputs


def local_run(inputs: Path, folder: Path) -> tuple[pd.DataFrame, float]:
    """The local engine file by file (two ONNX Runtime threads, the default here)."""
    started, frames = time.perf_counter(), []
    for path in sorted(inputs.glob("*.csv")):
        out = folder / f"local-{path.stem}.csv"
        score_file(BatchConfig(input=str(path), output=str(out), overwrite=True))
        frames.append(pd.read_csv(out))
    return pd.concat(frames, ignore_index=True), time.perf_counter() - started


def cluster_run(inputs: Path, output: Path, nodes: int, local: pd.DataFrame, remove_at: float | None = None) -> dict:
    """One `--engine ray` run on a fresh cluster of `nodes` 1-CPU nodes; `remove_at` seconds into the run, the last
    worker node is removed (the shards the driver had written by then are recorded)."""
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    workers = [cluster.add_node(num_cpus=1) for _ in range(nodes - 1)]
    cluster.wait_for_nodes()
    os.environ["RAY_ADDRESS"] = cluster.address
    result: dict = {}

    def run() -> None:
        started = time.perf_counter()
        cfg = BatchConfig(input=str(inputs), output=str(output), engine="ray", overwrite=True, chunk_rows=256)
        result["summary"] = score_file(cfg)
        result["seconds"] = time.perf_counter() - started

    try:
        thread = threading.Thread(target=run)
        thread.start()
        staging = output.parent / f".{output.name}.partial"
        started, removed, shards_then = time.perf_counter(), False, None
        while thread.is_alive():
            thread.join(0.2)
            if remove_at and not removed and time.perf_counter() - started >= remove_at:
                shards_then = len(list(staging.glob("*.parquet")))
                cluster.remove_node(workers[-1])
                removed = True
        scored = pd.read_parquet(output)
    finally:
        ray.shutdown()
        cluster.shutdown()
    summary = result["summary"]
    return {
        "nodes": nodes,
        "rows": summary.rows,
        "seconds": round(result["seconds"], 1),
        "reviews_per_s": round(summary.rows / result["seconds"], 1),
        "rows_per_node": sorted(summary.rows_per_node.values(), reverse=True),
        "in_order_once": scored["review_id"].tolist() == list(range(len(local))),
        "labels_equal_local": int((scored["label"].to_numpy() == local["label"].to_numpy()).sum()),
        "max_score_difference": float((scored["score"] - local["score"]).abs().max()),
        "worker_removed_mid_run": bool(remove_at) and removed and "seconds" in result,
        "removed_at_s": remove_at if removed else None,
        "shards_written_then": shards_then,
        "shards": len(list(output.glob("*.parquet"))),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ray.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        inputs = write_inputs(args.dataset, args.rows, folder)
        local, local_seconds = local_run(inputs, folder)
        runs = [cluster_run(inputs, folder / f"scored-{n}", n, local) for n in (2, 3)]
        fault = cluster_run(inputs, folder / "scored-fault", 2, local, remove_at=runs[0]["seconds"] / 2)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "ray": ray.__version__,
        "rows": args.rows,
        "files": FILES,
        "local": {"seconds": round(local_seconds, 1), "reviews_per_s": round(args.rows / local_seconds, 1)},
        "clusters": runs,
        "fault": fault,
    }
    write_report(args.out, report)


if __name__ == "__main__":
    main()
