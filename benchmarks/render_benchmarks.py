"""python scripts/render_benchmarks.py

Write BENCHMARKS.md, and the default-model and "Measured" blocks of README.md, from the JSON the
benchmark scripts left in bench-out/ and from the bundled model's manifest, so that every figure
there is copied by code from a measurement.
"""

from __future__ import annotations

import json
from pathlib import Path

from review_sentiment.runtime import DEFAULT_MODEL_DIR

OUT = Path("bench-out")


def load(name: str) -> dict:
    return json.loads((OUT / name).read_text())


def bf16_note(train: dict) -> str:
    """Why bf16 can be the slower one: without native bf16 the CPU emulates it (auto then picks fp32)."""
    speed = {r["precision"]: r["reviews_per_s"] for r in train["results"]}
    if speed.get("bf16", 0) < speed.get("fp32", 0):
        return " (this CPU has no native bf16, which it emulates slowly, so `--precision auto` trains in fp32 here)"
    return ""


def main() -> None:
    scoring, memory, app, train = load("scoring.json"), load("memory.json"), load("app.json"), load("train.json")
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    training, check = manifest["training"], manifest["export_check"]
    metrics = manifest["training_metrics"]
    lines = [
        "# Benchmarks",
        "",
        "Every figure below is copied by `scripts/render_benchmarks.py` from the JSON written by the script",
        "named in its section. Machine for all of them (unless said): "
        f"{scoring['machine']}; 2 cores, 24 GiB, no GPU. No GPU was available to this project, so there are no GPU figures.",
        f"Validation data: {manifest['data']['split']} of the IMDB train split "
        f"({manifest['data']['validation']['rows']} reviews); the IMDB test split was never used.",
        "",
        f"## Training throughput (`scripts/bench_train.py`, {train['date']})",
        f"LoRA on the bundled MiniLM-L6, real reviews, head+tail 256 tokens, batch 16, {train['steps']} optimizer steps each, "
        f"measured by the trainer; CPU: {train['cpu']}.",
        "",
        "| precision | reviews/s | × fp32 |",
        "| --- | --- | --- |",
    ]
    base = next(r["reviews_per_s"] for r in train["results"] if r["precision"] == "fp32")
    lines += [
        f"| {r['precision']} ({r['dtype']}) | {r['reviews_per_s']:.2f} | {r['reviews_per_s'] / base:.2f}× |"
        for r in train["results"]
    ]
    lines += [
        "",
        f"The default model's own run (`scripts/ship_default_model.py` docstring has the command): "
        f"{training['train_seconds']:.0f} s of training at {training['reviews_per_second']} reviews/s "
        f"({training['dtype']}), {training['steps']} steps, {training['epochs_completed']} epochs, stop: {training['stop_reason']}.",
        "",
        f"## Default model accuracy, fp32 vs int8 (`sentiment export` via `scripts/ship_default_model.py`, {manifest['created'][:10]})",
        f"Training-time validation (fp32 PyTorch, all {metrics['count']} held-out reviews): accuracy {metrics['accuracy']:.2%}, "
        f"macro F1 {metrics['macro_f1']:.4f}, ROC-AUC {metrics['roc_auc']:.4f}.",
        f"Export check on {check['validation_sample']} of those reviews plus 7 probes; fp32 ONNX vs PyTorch max |Δlogit| "
        f"{check['fp32_vs_pytorch_max_abs_logit_diff']:.1e}:",
        "",
        "| variant | size MB | agreement with fp32 | accuracy | ms/review |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['variant']} | {r['size_mb']:.1f} | {r['agreement']:.2%} | {r['accuracy']:.2%} | {r['ms_per_review']:.1f} |"
        for r in check["variants"]
    ]
    lines += [
        "",
        f"## Scoring throughput vs peers (`scripts/bench_scoring.py`, {scoring['date']})",
        f"{scoring['samples']} validation reviews, one run, batch 32, max length 256. The peers truncate the head only "
        "(what a transformers pipeline does); ours reads head+tail as in training, so label agreement below 100% is by design "
        "and accuracy is the fair comparison.",
        "",
        "| runner | reviews/s | × pipeline | agreement with pipeline | accuracy | achieved GFLOP/s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in scoring["results"]:
        gf = r["achieved_gflops"] if r["achieved_gflops"] else "–"
        lines.append(
            f"| {r['name']} | {r['reviews_per_s']} | {r['ratio_to_pipeline']:.2f}× | "
            f"{r['agreement_with_pipeline']:.2%} | {r['accuracy']:.2%} | {gf} |"
        )
    lines += [
        "",
        f"Plain fp32 matrix multiply in the same run (torch, 2048³): {scoring['matmul_fp32_gflops']} GFLOP/s. "
        "GFLOP/s counts the encoder's linear and attention FLOPs on the padded batches actually run; int8 runs "
        "integer dot products (VNNI), so its figure can exceed the fp32 matmul.",
        "",
        f"## App latency (`scripts/bench_app.py`, {app['date']})",
        f"HTTP through gradio_client to `python -m review_sentiment.app` with the bundled model, {app['repeats']} calls each.",
        "",
        "| input | endpoint | p50 ms | p95 ms |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {r['input']} | {r['endpoint']} | {r['p50_ms']} | {r['p95_ms']} |" for r in app["results"]]
    lines += [
        "",
        "`/predict` is one review; `/analyze` is one review with its occlusion explanation (at most 48 units, batched).",
        "",
        f"## score-csv peak memory (`scripts/bench_memory.py`, {memory['date']})",
        "Generated short reviews, bundled model, default chunking.",
        "",
        "| rows | input MB | peak RSS MB | seconds | rows/s |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['rows']:,} | {r['input_mb']} | {r['peak_rss_mb']} | {r['seconds']} | {r['rows_per_s']} |"
        for r in memory["results"]
    ]
    Path("BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    print(Path("BENCHMARKS.md").read_text())
    int8 = check["variants"][-1]
    fp32 = check["variants"][0]
    model_block = (
        f"`src/review_sentiment/default_model/`: {manifest['base_model']} (MiniLM-L6, 384 hidden) + LoRA, trained on the IMDB "
        f"train split on this project's 2-core CPU and exported to int8 ONNX ({int8['size_mb']:.1f} MB; fp32 is "
        f"{fp32['size_mb']:.0f} MB, too large to bundle). Validation accuracy (fp32 PyTorch, {metrics['count']} held-out "
        f"reviews, {manifest['data']['split']}): {metrics['accuracy']:.2%}. On the same {check['validation_sample']} "
        f"reviews int8 scores {int8['accuracy']:.2%} against fp32's {fp32['accuracy']:.2%} "
        f"({abs(100 * (fp32['accuracy'] - int8['accuracy'])):.1f} points "
        f"{'lower' if int8['accuracy'] < fp32['accuracy'] else 'higher'}, label agreement {int8['agreement']:.2%}); "
        "export `--quantize none` where that matters more than size and speed. The model card "
        "(`default_model/README.md`) has the exact commands, commit, split, hyper-parameters, time and machine."
    )
    best = max((r for r in scoring["results"] if r["name"].startswith("(c)")), key=lambda r: r["reviews_per_s"])
    long_explain = next(r for r in app["results"] if r["input"].startswith("long") and r["endpoint"] == "/analyze")
    numbers = "\n".join(
        [
            f"On {scoring['machine']} (2 cores, no GPU), {scoring['date']}:",
            "",
            f"- Scoring: {best['name'].removeprefix('(c) ')} {best['reviews_per_s']} reviews/s = {best['ratio_to_pipeline']:.2f}× a "
            f"transformers pipeline on the same model ({scoring['results'][0]['reviews_per_s']} reviews/s), accuracy "
            f"{best['accuracy']:.2%} vs {scoring['results'][0]['accuracy']:.2%} on {scoring['samples']} validation reviews.",
            "- score-csv peak memory: "
            + ", ".join(f"{r['peak_rss_mb']:.0f} MB at {r['rows']:,} rows" for r in memory["results"])
            + ".",
            f"- App: a 300-word review explained in p50 {long_explain['p50_ms'] / 1000:.2f} s (p95 {long_explain['p95_ms'] / 1000:.2f} s).",
            "- Training (LoRA, MiniLM, 256 tokens): "
            + ", ".join(f"{r['reviews_per_s']:.1f} reviews/s {r['precision']}" for r in train["results"])
            + bf16_note(train)
            + ".",
        ]
    )
    readme = Path("README.md").read_text()
    for name, block in (("model", model_block), ("numbers", numbers)):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        head, rest = readme.split(start, 1)
        readme = head + start + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    Path("README.md").write_text(readme)


if __name__ == "__main__":
    main()
