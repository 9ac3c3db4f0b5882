"""python benchmarks/bench_int8.py runs/minilm-lora-2ep/merged --reviews 1000 --out benchmarks/results/int8.json

Every int8 variant of one trained model, measured in one run on the same validation reviews (the run's
own hold-out, re-created from its manifest): size, accuracy (row i against gold label i), label agreement
with fp32, reviews/s through the scorer (its default batching), and batch dependence (each of the first 200 reviews
scored alone, on the scorer's own session, vs inside calls of 32 reviews and inside the default batching's calls,
both run concurrently on CPU: the largest score change and how many labels flip, of either). Also the
machine's ceilings measured by ONNX Runtime itself on 2048³ products: fp32 MatMul and u8×s8
MatMulInteger, with the share of each ceiling the fp32 and int8 paths reach end to end, and for int8 the
share of the bound its float attention allows (linear layers at the int8 ceiling, attention at fp32's).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_common import EARLIER_DEFAULT, machine  # this folder is on sys.path when run as a script
from bench_scoring import flops_by_part  # this folder is on sys.path when run as a script

from review_sentiment.cli import main as sentiment
from review_sentiment.export.verify import validation_sample
from review_sentiment.manifest import TRAINING_MANIFEST, read_manifest
from review_sentiment.metrics import agreement, label_accuracy
from review_sentiment.scorer import Scorer
from review_sentiment.scoring import predicted_classes, probabilities

VARIANTS = {
    "fp32": ["--quantize", "none"],
    "int8 dynamic": ["--quantize", "int8", "--int8-mode", "dynamic"],
    "int8 static QDQ": ["--quantize", "int8"],
    "int8 static QOperator": ["--quantize", "int8", "--int8-format", "qoperator"],
    "int8 static QDQ entropy": ["--quantize", "int8", "--calibration-method", "entropy"],
    "O2 + int8 static QDQ": ["--quantize", "int8", "--optimize", "O2"],
    "O2 + int8 dynamic": ["--quantize", "int8", "--optimize", "O2", "--int8-mode", "dynamic"],
}


def ceilings(size: int = 2048, repeats: int = 5) -> dict:
    """Operations/s of one fp32 MatMul and one u8×s8 MatMulInteger of size³ in ONNX Runtime (best of repeats)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    results = {}
    for name, op, a_type, b_type, out_type in (
        ("fp32_matmul_gops", "MatMul", TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT),
        ("int8_matmulinteger_gops", "MatMulInteger", TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32),
    ):
        graph = helper.make_graph(
            [helper.make_node(op, ["a", "b"], ["c"])],
            name,
            [
                helper.make_tensor_value_info("a", a_type, [size, size]),
                helper.make_tensor_value_info("b", b_type, [size, size]),
            ],
            [helper.make_tensor_value_info("c", out_type, [size, size])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        dtype = {TensorProto.FLOAT: np.float32, TensorProto.UINT8: np.uint8, TensorProto.INT8: np.int8}
        rng = np.random.default_rng(0)
        feed = {k: rng.integers(0, 100, (size, size)).astype(dtype[t]) for k, t in (("a", a_type), ("b", b_type))}
        session.run(None, feed)
        best = min(_seconds(lambda s=session, f=feed: s.run(None, f)) for _ in range(repeats))
        results[name] = round(2 * size**3 / best / 1e9, 1)
    return results


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def export_variants(merged: Path, root: Path, names: list[str]) -> dict[str, Path]:
    folders = {}
    for name in names:
        folders[name] = root / name.replace(" ", "-").replace("+", "plus")
        code = sentiment(
            ["export", str(merged), "--output", str(folders[name]), "--validation-samples", "0", *VARIANTS[name]]
        )
        if code != 0:
            raise SystemExit(f"export of {name} failed")
    return folders


def measure(name: str, folder: Path, texts: list[str], gold: np.ndarray, fp32_labels: list | None) -> dict:
    scorer = Scorer.load(folder, provider="cpu")
    scorer.logits(texts[:32], cleaned=True)  # warm-up
    started = time.perf_counter()
    logits = scorer.logits(texts, cleaned=True)  # the scorer's default batching, as score-csv runs it
    seconds = time.perf_counter() - started
    labels = [scorer.labels[i] for i in predicted_classes(probabilities(logits))]
    probe = texts[:200]
    alone = probabilities(np.stack([scorer.logits([t], cleaned=True)[0] for t in probe]))
    batchings = [probabilities(scorer.logits(probe, size, cleaned=True)) for size in (EARLIER_DEFAULT.rows, None)]
    return {
        "variant": name,
        "size_mb": round((folder / "model.onnx").stat().st_size / 1e6, 1),
        "accuracy": label_accuracy(gold, labels, scorer.labels),
        "agreement_with_fp32": agreement(labels, fp32_labels) if fp32_labels is not None else 1.0,
        "reviews_per_s": round(len(texts) / seconds, 1),
        "batching": scorer.batching.describe(),
        "batch_probes": [EARLIER_DEFAULT.describe(), "default batching"],
        "batch_max_abs_score_diff": max(float(np.abs(alone[:, 1] - b[:, 1]).max()) for b in batchings),
        "batch_label_flips": max(int((alone.argmax(axis=1) != b.argmax(axis=1)).sum()) for b in batchings),
        "labels": labels,
    }


def report_rows(rows: list[dict], limits: dict, flops: tuple[float, float] | None) -> list[dict]:
    """Ratios to fp32, and each variant's share of its ceiling. `flops`: per review, (linear, attention).

    An int8 variant keeps attention's products of two activations in float by design (batch independence;
    softmax probabilities at one fixed int8 scale), so beside the int8 ceiling it is measured against the
    bound of its own mix: linear FLOPs at the int8 ceiling plus attention FLOPs at the fp32 ceiling.
    """
    fp32 = rows[0]
    for row in rows:
        row["accuracy_vs_fp32_points"] = round(100 * (row["accuracy"] - fp32["accuracy"]), 2)
        row["speed_vs_fp32"] = round(row["reviews_per_s"] / fp32["reviews_per_s"], 2)
        if flops:
            linear, attention = flops
            achieved = (linear + attention) * row["reviews_per_s"] / 1e9
            int8 = row["variant"] != "fp32"
            ceiling = limits["int8_matmulinteger_gops"] if int8 else limits["fp32_matmul_gops"]
            row["achieved_gops"] = round(achieved, 1)
            row["share_of_ceiling"] = round(achieved / ceiling, 3)
            if int8:
                bound = 1e9 / (linear / limits["int8_matmulinteger_gops"] + attention / limits["fp32_matmul_gops"])
                row["share_of_mixed_bound"] = round(row["reviews_per_s"] / bound, 3)
        row.pop("labels", None)
    return rows


def flops_per_review(merged: Path, scorer_folder: Path, texts: list[str]) -> tuple[float, float]:
    """The encoder's FLOPs per review at its real (unpadded) token count, averaged, as (linear, attention)
    (bench_scoring's count, which tests/benchmarks checks against PyTorch's FlopCounterMode)."""
    config = json.loads((merged / "config.json").read_text())
    lengths = [len(ids) for ids in Scorer.load(scorer_folder, provider="cpu").encoder.encode(texts)]
    linear, attention = flops_by_part(config, lengths)
    return linear / len(lengths), attention / len(lengths)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("merged", type=Path, help="merged model folder written by `sentiment train`")
    parser.add_argument("--reviews", type=int, default=1000, help="validation reviews to measure on")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/int8.json"))
    args = parser.parse_args()
    training = json.loads((args.merged / TRAINING_MANIFEST).read_text())
    sample = validation_sample(training, args.reviews)
    if sample is None:
        raise SystemExit("the run's validation data is not on this machine")
    texts, gold = sample
    names = ["fp32", *[n for n in args.variants if n != "fp32"]]
    with tempfile.TemporaryDirectory() as tmp:
        folders = export_variants(args.merged, Path(tmp), names)
        limits = ceilings()
        rows = [measure("fp32", folders["fp32"], texts, gold, None)]
        rows += [measure(n, folders[n], texts, gold, rows[0]["labels"]) for n in names[1:]]
        flops = flops_per_review(args.merged, folders["fp32"], texts)
        max_length = read_manifest(folders["fp32"])["text_spec"]["max_length"]
    report = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "model": str(args.merged),
        "reviews": len(texts),
        "max_length": max_length,
        "data": training["data"]["split"],
        "ceilings": limits,
        "flops_per_review": sum(flops),
        "attention_share_of_flops": flops[1] / sum(flops),
        "rows": report_rows(rows, limits, flops),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    for row in report["rows"]:
        print(json.dumps(row))
    print(json.dumps(limits))


if __name__ == "__main__":
    main()
