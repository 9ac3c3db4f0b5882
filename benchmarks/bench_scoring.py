"""python benchmarks/bench_scoring.py --merged runs/minilm/merged --fp32 models/minilm-fp32 --int8 models/minilm-int8

--fp32 and --int8 must be exports of --merged (their manifests' source_model says so).

Scoring throughput on real reviews, one run, one machine: (a) a transformers pipeline on the merged
PyTorch model; (b) Optimum's ORTModelForSequenceClassification in a transformers pipeline, each at batch 1
(a pipeline's default) and 32; (c) our runtime, fp32 and int8, with the scorer's default batching on CPU and
with its earlier default (32 a call, one call at a time), and int8 once more with every ONNX Runtime graph
fusion on (a CPU session leaves out `providers.CPU_SLOWER_FUSIONS`). Reviews/s, ratio to the faster (a), label agreement with it, accuracy; and the achieved GFLOP/s (on
the padded batches each of ours ran) next to a plain fp32 matrix multiply measured in the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import (
    EARLIER_DEFAULT,
    EVERY_FUSION,
    RecordingSession,
    cpu_model,
    every_fusion,
    fastest_pipeline,
    ours,
)  # this folder is on sys.path when run as a script
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

from review_sentiment.export.verify import validation_sample
from review_sentiment.manifest import read_manifest
from review_sentiment.metrics import agreement, label_accuracy
from review_sentiment.scorer import Scorer
from review_sentiment.text import LABELS


def machine() -> str:
    return f"{cpu_model()}, {torch.get_num_threads()} threads, {platform.python_implementation()} {platform.python_version()}"


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(size, size)
    b = torch.randn(size, size)
    a @ b
    started = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - started) / 1e9


def model_flops(config: dict, lengths: list[int]) -> float:
    """Forward FLOPs of a BERT encoder on these padded sequence lengths (linear layers + attention)."""
    return sum(flops_by_part(config, lengths))


def flops_by_part(config: dict, lengths: list[int]) -> tuple[float, float]:
    """(linear layers, attention's two products of activations): FLOPs of a BERT encoder on these lengths."""
    hidden, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    per_token_linear = 2 * layers * (4 * hidden * hidden + 2 * hidden * inter)
    return float(sum(per_token_linear * t for t in lengths)), float(sum(4 * layers * t * t * hidden for t in lengths))


def timed(label: str, batch: str, fn, texts: list[str]) -> dict:
    fn(texts[:32])  # warm-up
    started = time.perf_counter()
    labels = fn(texts)
    seconds = time.perf_counter() - started
    print(f"{label:<38} {batch:<50} {len(texts) / seconds:8.1f} reviews/s", flush=True)
    return {"name": label, "batch": batch, "seconds": seconds, "reviews_per_s": len(texts) / seconds, "labels": labels}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merged", type=Path, required=True, help="merged PyTorch model folder")
    parser.add_argument("--fp32", type=Path, required=True, help="our fp32 export of --merged")
    parser.add_argument("--int8", type=Path, required=True, help="our int8 export of --merged")
    parser.add_argument("--samples", type=int, default=1000, help="validation reviews to score")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoring.json"))
    return parser.parse_args()


PEER_BATCHES = (1, 32)  # a transformers pipeline's own default (one review a call, no padding), and 32


def run_peers(args: argparse.Namespace, texts: list[str], max_length: int) -> list[dict]:
    """Time (a) the PyTorch pipeline and (b) Optimum's ORTModel pipeline at each of PEER_BATCHES."""
    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    labels_of = lambda outputs: [o["label"] for o in outputs]  # noqa: E731
    torch_model = AutoModelForSequenceClassification.from_pretrained(args.merged).eval()
    torch_pipe = pipeline("text-classification", model=torch_model, tokenizer=tokenizer, device="cpu")
    from optimum.onnxruntime import ORTModelForSequenceClassification

    ort_model = ORTModelForSequenceClassification.from_pretrained(args.fp32, provider="CPUExecutionProvider")
    ort_pipe = pipeline("text-classification", model=ort_model, tokenizer=tokenizer, device="cpu")
    results = []
    for name, pipe in (
        ("(a) transformers pipeline, PyTorch", torch_pipe),
        ("(b) Optimum ORTModel pipeline, fp32", ort_pipe),
    ):
        for batch in PEER_BATCHES:
            kwargs = {"batch_size": batch, "truncation": True, "max_length": max_length}
            label = f"{batch} a call"
            results.append(timed(name, label, lambda t, p=pipe, k=kwargs: labels_of(p(t, **k)), texts))
    return results


def run_ours(args: argparse.Namespace, texts: list[str], config: dict) -> list[dict]:
    """Time (c) our scorer, fp32 and int8, with its default batching and with EARLIER_DEFAULT, and int8 with every
    ONNX Runtime fusion, counting the FLOPs of the batches each really ran (on both its sessions)."""
    runs = [
        (ours(kind), folder, batching, False)
        for kind, folder in (("fp32", args.fp32), ("int8", args.int8))
        for batching in (None, EARLIER_DEFAULT)
    ]
    runs.append((EVERY_FUSION, args.int8, None, True))
    results = []
    for name, folder, batching, every in runs:
        with every_fusion() if every else contextlib.nullcontext():
            results.append(time_ours(name, folder, batching, texts, config))
    return results


def time_ours(name: str, folder: Path, batching, texts: list[str], config: dict) -> dict:
    """One run of our scorer on `folder` (`batching`, or its default), with the FLOPs of the calls it made."""
    scorer = Scorer.load(folder, provider="cpu")
    scorer.batching = batching or scorer.batching
    scorer.logits(texts[:64])  # opens the concurrent calls' session, if it has one
    shapes: list = []
    scorer.session = RecordingSession(scorer.session, shapes)
    if scorer.concurrent_session is not None:
        scorer.concurrent_session = RecordingSession(scorer.concurrent_session, shapes)
    labels_of = lambda t, s=scorer: [p.label for p in s.predict(t)]  # noqa: E731
    result = timed(name, scorer.batching.describe(), labels_of, texts)
    lengths = [length for rows, length in shapes for _ in range(rows)]
    return {**result, "flops": model_flops(config, lengths[-len(texts) :])}  # after the warm-up


def served_length(args: argparse.Namespace) -> int:
    """The tokens every runner reads per review: what our exports read (both the same), so the peers read it too."""
    lengths = {read_manifest(folder)["text_spec"]["max_length"] for folder in (args.fp32, args.int8)}
    if len(lengths) != 1:
        raise SystemExit(f"--fp32 and --int8 read different lengths {sorted(lengths)}: export them alike")
    return lengths.pop()


def check_sources(args: argparse.Namespace) -> None:
    """The exports must hold --merged's weights, or the peers and ours would score different models."""
    for folder in (args.fp32, args.int8):
        source = read_manifest(folder).get("source_model")
        if source is None or Path(source).resolve() != args.merged.resolve():
            raise SystemExit(f"{folder} was exported from {source}, not from --merged {args.merged}")


def result_rows(results: list[dict], gold: list) -> list[dict]:
    """Reviews/s, ratio to and agreement with the faster transformers pipeline run, accuracy, and ours' GFLOP/s."""
    reference = fastest_pipeline(results)
    gold_labels = np.array(gold)
    return [
        {
            "name": r["name"],
            "batch": r["batch"],
            "reviews_per_s": round(r["reviews_per_s"], 1),
            "ratio_to_pipeline": round(r["reviews_per_s"] / reference["reviews_per_s"], 2),
            "agreement_with_pipeline": agreement(r["labels"], reference["labels"]),
            "accuracy": label_accuracy(gold_labels, r["labels"], LABELS),
            "achieved_gflops": round(r["flops"] / r["seconds"] / 1e9, 1) if "flops" in r else None,
        }
        for r in results
    ]


def print_report(report: dict, peak: float) -> None:
    rows = report["results"]
    print(f"\n{report['machine']}; {report['samples']} validation reviews ({report['split']}); {report['date']}")
    print(f"plain fp32 matmul (torch, 2048^3): {peak:.1f} GFLOP/s")
    print("| runner | batch | reviews/s | × pipeline | agreement | accuracy | GFLOP/s |\n" + "| --- " * 7 + "|")
    for r in rows:
        gf = f"{r['achieved_gflops']}" if r["achieved_gflops"] else "–"
        print(
            f"| {r['name']} | {r['batch']} | {r['reviews_per_s']} | {r['ratio_to_pipeline']:.2f}× | "
            f"{r['agreement_with_pipeline']:.2%} | {r['accuracy']:.2%} | {gf} |"
        )


def main() -> None:
    args = parse_args()
    check_sources(args)
    training = json.loads((args.merged / "training_manifest.json").read_text())
    texts, gold = validation_sample(training, args.samples)
    config = json.loads((args.merged / "config.json").read_text())
    results = run_peers(args, texts, served_length(args)) + run_ours(args, texts, config)
    peak = matmul_gflops()
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": str(args.merged),
        "samples": len(texts),
        "split": training["data"]["split"],
        "max_length": served_length(args),
        "matmul_fp32_gflops": round(peak, 1),
        "results": result_rows(results, gold),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_report(report, peak)


if __name__ == "__main__":
    main()
