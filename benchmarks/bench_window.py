"""python benchmarks/bench_window.py --lengths 256 384 512

How much of a review the served model reads, against accuracy and time: the bundled model (or --model)
scores every review of its validation split (re-created from its manifest, as export does; needs the
training data on this machine) with head+tail windows of several lengths, the exported graph unchanged
(its sequence axis is dynamic). A model trained at 256 tokens may read more at serving time; this
measures whether that pays.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_common import machine  # this folder is on sys.path when run as a script

from review_sentiment.manifest import read_manifest
from review_sentiment.metrics import agreement
from review_sentiment.scorer import Scorer
from review_sentiment.scoring import predicted_classes, probabilities
from review_sentiment.text import ReviewEncoder, TextSpec, clean_text
from review_sentiment.train.data import validation_split


def measure(scorer: Scorer, texts: list[str], labels: np.ndarray, length: int) -> dict:
    """Accuracy and reviews/s of `scorer` reading at most `length` tokens (head+tail) of each review."""
    spec = TextSpec(max_length=length, truncation=scorer.encoder.spec.truncation, labels=scorer.encoder.spec.labels)
    scorer.encoder = ReviewEncoder(scorer.encoder.tokenizer, spec)
    started = time.perf_counter()
    logits = scorer.logits(texts, cleaned=True)
    seconds = time.perf_counter() - started
    return {
        "max_length": length,
        "accuracy": agreement(labels, predicted_classes(probabilities(logits))),  # the one label rule
        "reviews_per_s": round(len(texts) / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported folder (default: the bundled model)")
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 384, 512])
    parser.add_argument("--dataset", help="the training data, if it moved since training")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/window.json"))
    args = parser.parse_args()
    scorer = Scorer.load(args.model)
    params = dict(read_manifest(scorer.folder)["hyperparameters"])
    if args.dataset:
        params["dataset"] = args.dataset
    reviews = validation_split(params)
    texts = [clean_text(t) for t in reviews.texts]
    trained = params["max_length"]  # what training read; the export may read more (export --max-length)
    rows = [measure(scorer, texts, reviews.labels, length) for length in args.lengths]
    for row in rows:
        print(row, flush=True)
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": str(scorer.folder),
        "batch": scorer.batching.describe(),
        "reviews": len(texts),
        "trained_max_length": trained,
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
