"""python benchmarks/bench_scoring.py --merged runs/minilm-lora-2ep/merged --fp32 models/minilm-fp32 --int8 src/review_sentiment/default_model

Scoring throughput on real reviews, one run, one machine: (a) a transformers pipeline on the merged
PyTorch model, batch 32; (b) Optimum's ORTModelForSequenceClassification in a transformers pipeline;
(c) our runtime, fp32 and int8. Reviews/s, ratio to (a), label agreement with (a), accuracy; and the
achieved GFLOP/s next to a plain fp32 matrix multiply measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from bench_common import cpu_model  # this folder is on sys.path when run as a script
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


def timed(label: str, fn, texts: list[str]) -> dict:
    fn(texts[:32])  # warm-up
    started = time.perf_counter()
    labels = fn(texts)
    seconds = time.perf_counter() - started
    print(f"{label:<38} {len(texts) / seconds:8.1f} reviews/s", flush=True)
    return {"name": label, "seconds": seconds, "reviews_per_s": len(texts) / seconds, "labels": labels}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--merged", type=Path, required=True, help="merged PyTorch model folder")
    parser.add_argument("--fp32", type=Path, required=True, help="our fp32 export")
    parser.add_argument("--int8", type=Path, required=True, help="our int8 export")
    parser.add_argument("--samples", type=int, default=1000, help="validation reviews to score")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scoring.json"))
    return parser.parse_args()


def run_runners(args: argparse.Namespace, texts: list[str], max_length: int) -> list[dict]:
    """Time (a) the PyTorch pipeline, (b) Optimum's ORTModel pipeline and (c) our runtime, fp32 and int8, in that order."""
    tokenizer = AutoTokenizer.from_pretrained(args.merged)
    labels_of = lambda outputs: [o["label"] for o in outputs]  # noqa: E731

    torch_model = AutoModelForSequenceClassification.from_pretrained(args.merged).eval()
    torch_pipe = pipeline("text-classification", model=torch_model, tokenizer=tokenizer, device="cpu")
    kwargs = {"batch_size": 32, "truncation": True, "max_length": max_length}
    results = [timed("(a) transformers pipeline, PyTorch", lambda t: labels_of(torch_pipe(t, **kwargs)), texts)]

    from optimum.onnxruntime import ORTModelForSequenceClassification

    ort_model = ORTModelForSequenceClassification.from_pretrained(args.fp32, provider="CPUExecutionProvider")
    ort_pipe = pipeline("text-classification", model=ort_model, tokenizer=tokenizer, device="cpu")
    results.append(timed("(b) Optimum ORTModel pipeline, fp32", lambda t: labels_of(ort_pipe(t, **kwargs)), texts))

    for name, folder in (("(c) ours, fp32", args.fp32), ("(c) ours, int8", args.int8)):
        scorer = Scorer.load(folder, provider="cpu")
        results.append(timed(name, lambda t, s=scorer: [p.label for p in s.predict(t, batch_size=32)], texts))
    return results


def served_length(args: argparse.Namespace) -> int:
    """The tokens every runner reads per review: what our exports read (both the same), so the peers read it too."""
    lengths = {read_manifest(folder)["text_spec"]["max_length"] for folder in (args.fp32, args.int8)}
    if len(lengths) != 1:
        raise SystemExit(f"--fp32 and --int8 read different lengths {sorted(lengths)}: export them alike")
    return lengths.pop()


def padded_lengths(fp32: Path, texts: list[str]) -> list[int]:
    """Each review's padded length as our runtime batches them: longest first, 32 a batch, padded to the first."""
    ours = Scorer.load(fp32, provider="cpu")
    ids = ours.encoder.encode(texts)
    order = np.argsort([-len(s) for s in ids], kind="stable")
    return [len(ids[order[i]]) for i in range(0, len(ids), 32) for _ in order[i : i + 32]]


def result_rows(results: list[dict], flops: float, gold: list) -> list[dict]:
    """Reviews/s, ratio to and agreement with the pipeline (results[0]), accuracy, and GFLOP/s for ours."""
    reference = results[0]
    gold_labels = np.array(gold)
    rows = []
    for r in results:
        rows.append(
            {
                "name": r["name"],
                "reviews_per_s": round(r["reviews_per_s"], 1),
                "ratio_to_pipeline": round(r["reviews_per_s"] / reference["reviews_per_s"], 2),
                "agreement_with_pipeline": agreement(r["labels"], reference["labels"]),
                "accuracy": label_accuracy(gold_labels, r["labels"], LABELS),
                "achieved_gflops": round(flops / r["seconds"] / 1e9, 1) if r["name"].startswith("(c)") else None,
            }
        )
    return rows


def print_report(report: dict, peak: float) -> None:
    rows = report["results"]
    print(f"\n{report['machine']}; {report['samples']} validation reviews ({report['split']}); {report['date']}")
    print(f"plain fp32 matmul (torch, 2048^3): {peak:.1f} GFLOP/s")
    print("| runner | reviews/s | × pipeline | agreement | accuracy | GFLOP/s |\n| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        gf = f"{r['achieved_gflops']}" if r["achieved_gflops"] else "–"
        print(
            f"| {r['name']} | {r['reviews_per_s']} | {r['ratio_to_pipeline']:.2f}× | "
            f"{r['agreement_with_pipeline']:.2%} | {r['accuracy']:.2%} | {gf} |"
        )


def main() -> None:
    args = parse_args()
    training = json.loads((args.merged / "training_manifest.json").read_text())
    texts, gold = validation_sample(training, args.samples)
    results = run_runners(args, texts, served_length(args))
    flops = model_flops(json.loads((args.merged / "config.json").read_text()), padded_lengths(args.fp32, texts))
    peak = matmul_gflops()
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "model": str(args.merged),
        "samples": len(texts),
        "split": training["data"]["split"],
        "max_length": served_length(args),
        "matmul_fp32_gflops": round(peak, 1),
        "results": result_rows(results, flops, gold),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_report(report, peak)


if __name__ == "__main__":
    main()
