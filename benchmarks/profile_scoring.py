"""python benchmarks/profile_scoring.py [MODEL ...] --reviews 400 --batch-sizes 1 2 4 8 16 32 64

Where the scorer's time goes, by ONNX Runtime's own profiler: each exported model (default: the bundled one)
scores the first --reviews of its own validation hold-out (re-created from its manifest; needs the training
data on this machine) at each batch size, through the scorer (sorted by length, padded per batch; one call at
a time on all cores, not the CPU default's concurrent single-thread calls), twice:
once plain, for reviews/s and the share of that time inside ONNX Runtime's runs (the rest is tokenizing,
padding and Python); once profiled, for the kernel time of each operator type (its warm-up run left out),
summed and grouped (int8 linear layers, float MatMuls, softmax, quantize/dequantize, ...) as shares of all
kernel time, and attention's own share (Q·Kᵀ, mask, softmax, ·V; not told where a fused `Attention` packs the
projections in). Nothing here is estimated: every figure is a sum of the profiler's durations or a clock.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench_common import RecordingSession, machine, write_report  # this folder is on sys.path when run as a script

from review_sentiment.manifest import read_manifest
from review_sentiment.providers import Batching, SessionPlan, create_session
from review_sentiment.scorer import Scorer
from review_sentiment.text import clean_text
from review_sentiment.train.data import validation_split

# Operator types as ONNX Runtime's CPU provider runs them after its own graph fusions (QDQ pairs around a
# MatMul become one integer kernel), grouped by the kind of work they do.
GROUPS = {
    "int8 linear": {"MatMulInteger", "MatMulIntegerToFloat", "DynamicQuantizeMatMul", "QLinearMatMul", "QGemm"},
    "float MatMul": {"MatMul", "FusedMatMul", "Gemm", "FusedGemm"},
    "fused attention": {"Attention", "MultiHeadAttention", "QAttention"},
    "softmax": {"Softmax"},
    "elementwise (add, mul, where)": {"Add", "Mul", "Div", "Sub", "Where"},
    "quantize/dequantize": {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"},
    "layer norm, GELU": {
        "LayerNormalization",
        "SkipLayerNormalization",
        "SimplifiedLayerNormalization",
        "EmbedLayerNormalization",
        "Gelu",
        "FastGelu",
        "BiasGelu",
        "Erf",
    },
}


OTHER = "other (reshape, transpose, gather, ...)"


def group_of(op_type: str) -> str:
    return next((group for group, ops in GROUPS.items() if op_type in ops), OTHER)


# Fused attention operators that take the packed query/key/value weights: their time includes the projections.
PACKED_ATTENTION = {"Attention", "QAttention"}
MAX_EVENTS = 1_000_000  # ONNX Runtime stops recording a profile there, silently


def in_attention_core(op_type: str, node: str) -> bool:
    """Whether a kernel is attention's own work on activations (Q·Kᵀ, scale, mask, softmax, ·V; not its
    projections): MultiHeadAttention, or a node in a BERT exporter's `.../attention/self/` scope that is not
    under its query/key/value projections. Quantize/dequantize nodes there belong to the int8 projections
    around attention (the output projection's input), not to its own float work."""
    if op_type == "MultiHeadAttention":
        return True
    if op_type in GROUPS["quantize/dequantize"]:
        return False
    return "/attention/self/" in node and not any(f"/{p}/" in node for p in ("query", "key", "value"))


def kernel_times(events: list[dict]) -> tuple[dict[tuple[str, str], float], float]:
    """Microseconds of kernel time per (operator type, node name), and of whole runs (`model_run`), from a
    profile's events, leaving out the first run (the warm-up: first-call allocations)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e["name"] == "model_run"), key=lambda e: e["ts"])
    warm_up_end = runs[0]["ts"] + runs[0]["dur"] if runs else float("-inf")
    by_node: dict[tuple[str, str], float] = defaultdict(float)
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time") and event["ts"] >= warm_up_end:
            by_node[event["args"]["op_name"], event["name"].removesuffix("_kernel_time")] += event["dur"]
    return dict(by_node), sum(e["dur"] for e in runs[1:])


def shares(by_node: dict[tuple[str, str], float]) -> dict:
    """Each group's and each operator type's share of all kernel time, largest first, and attention core's."""
    total = sum(by_node.values())
    groups: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for (op, _), micros in by_node.items():
        groups[group_of(op)] += micros
        ops[op] += micros
    attention = sum(m for (op, node), m in by_node.items() if in_attention_core(op, node))
    packed = any(op in PACKED_ATTENTION for op, _ in by_node)  # projections inside: no core share to tell
    return {
        "attention_core": None if packed else round(attention / total, 4),
        "groups": {g: round(m / total, 4) for g, m in sorted(groups.items(), key=lambda kv: -kv[1])},
        "ops": {op: round(m / total, 4) for op, m in sorted(ops.items(), key=lambda kv: -kv[1])},
    }


def profiled_session(scorer: Scorer, folder: Path):
    """A session made as the scorer's own is (`create_session`), with ONNX Runtime's profiler on."""
    model = scorer.folder / scorer.manifest.get("model_file", "model.onnx")
    return create_session(
        model, "cpu", plan=SessionPlan.from_manifest(scorer.manifest), profile_prefix=folder / "profile"
    )


def measure(scorer: Scorer, texts: list[str], batch_size: int, folder: Path) -> dict:
    """reviews/s and the share of it inside ONNX Runtime, from a plain pass after a warm-up; then one profiled
    pass (its warm-up run left out) for the kernel-time shares. One call at a time on the scorer's own session
    (all its threads), so that the timer and the profiler see every call."""
    plain, batching = scorer.session, scorer.batching
    scorer.batching = Batching(rows=batch_size)
    try:
        scorer.logits(texts[:batch_size], cleaned=True)  # warm-up: first-run allocations
        scorer.session = timed = RecordingSession(plain)
        started = time.perf_counter()
        scorer.logits(texts, cleaned=True)
        seconds = time.perf_counter() - started
        scorer.session = profiled_session(scorer, folder)
        scorer.logits(texts[:batch_size], cleaned=True)
        scorer.logits(texts, cleaned=True)
        events = json.loads(Path(scorer.session.end_profiling()).read_text())
    finally:
        scorer.session, scorer.batching = plain, batching
    if len(events) >= MAX_EVENTS:
        raise SystemExit(f"ONNX Runtime's profile stopped at {MAX_EVENTS:,} events: give fewer --reviews")
    by_node, _ = kernel_times(events)
    return {
        "batch_size": batch_size,
        "reviews_per_s": round(len(texts) / seconds, 1),
        "inside_runs": round(timed.seconds / seconds, 3),
        "kernel_seconds": round(sum(by_node.values()) / 1e6, 4),
        **shares(by_node),
    }


def profile_model(model: str | None, args: argparse.Namespace, folder: Path) -> dict:
    scorer = Scorer.load(model, provider="cpu")
    manifest = read_manifest(scorer.folder)
    params = dict(manifest["hyperparameters"])
    if args.dataset:
        params["dataset"] = args.dataset
    texts = [clean_text(t) for t in validation_split(params).texts[: args.reviews]]
    rows = []
    for batch_size in args.batch_sizes:
        rows.append(measure(scorer, texts, batch_size, folder))
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "ops"}), flush=True)
    return {
        "model": str(scorer.folder),
        "source_model": manifest.get("source_model"),
        "quantization": manifest.get("quantization", "none"),
        "optimization": manifest.get("optimization"),
        "max_length": scorer.encoder.spec.max_length,
        "reviews": len(texts),
        "rows": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="exported folders (default: the bundled model)")
    parser.add_argument("--reviews", type=int, default=400, help="validation reviews scored at each batch size")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    parser.add_argument("--dataset", help="the training data, if it moved since training")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/profile.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models = [profile_model(m, args, Path(tmp)) for m in (args.models or [None])]
    write_report(args.out, {"date": time.strftime("%Y-%m-%d"), "machine": machine(), "models": models})


if __name__ == "__main__":
    main()
