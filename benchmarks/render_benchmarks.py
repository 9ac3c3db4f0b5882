"""python benchmarks/render_benchmarks.py

Write BENCHMARKS.md, and the default-model and "Measured" blocks of README.md, from the JSON the
benchmark scripts leave in benchmarks/results/ (committed: the raw measurements behind every figure)
and from the bundled model's manifest, so that every figure there is copied by code from a measurement.
A section whose JSON is not there is kept as BENCHMARKS.md has it (its heading carries its date).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench_common import (  # this folder is on sys.path when run as a script
    EARLIER_DEFAULT,
    EVERY_FUSION,
    fastest_pipeline,
    ours,
)

from review_sentiment import providers
from review_sentiment.card import METHOD_NAMES, method_of
from review_sentiment.manifest import DEFAULT_MODEL_DIR

OUT = Path("benchmarks/results")


def load(name: str) -> dict:
    return json.loads((OUT / name).read_text())


def bf16_note(train: dict) -> str:
    """Why bf16 can be the slower one: without native bf16 the CPU emulates it (auto then picks fp32)."""
    speed = {r["precision"]: r["reviews_per_s"] for r in train["results"]}
    if speed.get("bf16", 0) < speed.get("fp32", 0):
        return " (this CPU has no native bf16, which it emulates slowly, so `--precision auto` trains in fp32 here)"
    return ""


# Figures written before the JSON recorded its machine: the date the project's machine changed, and the earlier one.
EARLIER_MACHINE = ("2026-12-05", "AMD EPYC, 2 threads, CPython 3.11.7")


def header_lines(scoring: dict, manifest: dict) -> list[str]:
    return [
        "# Benchmarks",
        "",
        "Every figure below is copied by `benchmarks/render_benchmarks.py` from the JSON written by the script",
        "named in its section. Machine for all of them (unless said): "
        f"{scoring['machine']}; 2 cores, 24 GiB, no GPU; sections dated before {EARLIER_MACHINE[0]} ran on "
        f"{EARLIER_MACHINE[1]} (the machine changed). No GPU was available to this project, so there are no GPU figures.",
        f"Validation data: {manifest['data']['split']} of the IMDB train split "
        f"({manifest['data']['validation']['rows']} reviews); the IMDB test split was never used.",
    ]


def training_section(train: dict, training: dict) -> list[str]:
    """bench_train's throughput per precision, then the default model's own training run from its manifest."""
    lines = [
        f"## Training throughput (`benchmarks/bench_train.py`, {train['date']})",
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
    return [*lines, "", default_run_line(training)]


def default_run_line(training: dict) -> str:
    """The bundled model's own training run, from its manifest (re-rendered whenever the model changes)."""
    return (
        f"The default model's own run (`scripts/ship_default_model.py` docstring has the command): "
        f"{training['train_seconds']:.0f} s of training at {training['reviews_per_second']} reviews/s "
        f"({training['dtype']}), {training['steps']} steps, {training['epochs_completed']} epochs, stop: {training['stop_reason']}."
    )


def kept_training(kept: list[str], training: dict) -> list[str]:
    """The kept training section with its default-run line from the bundled model's manifest."""
    return [default_run_line(training) if line.startswith("The default model's own run") else line for line in kept]


def accuracy_section(manifest: dict) -> list[str]:
    """The bundled model's validation metrics and its export check (fp32 vs int8), from its manifest."""
    check, metrics = manifest["export_check"], manifest["training_metrics"]
    lines = [
        f"## Default model accuracy, fp32 vs int8 (`sentiment export` via `scripts/ship_default_model.py`, {manifest['created'][:10]})",
        f"Training-time validation (fp32 PyTorch, all {metrics['count']} held-out reviews): accuracy {metrics['accuracy']:.2%}, "
        f"macro F1 {metrics['macro_f1']:.4f}, ROC-AUC {metrics['roc_auc']:.4f}.",
        f"Export check on {check['validation_sample']} of those reviews plus 7 probes; fp32 ONNX vs PyTorch max |Δlogit| "
        f"{check['fp32_vs_pytorch_max_abs_logit_diff']:.1e}:",
        "",
        "| variant | size MB | agreement with fp32 | accuracy | ms/review |",
        "| --- | --- | --- | --- | --- |",
    ]
    return lines + [
        f"| {r['variant']} | {r['size_mb']:.1f} | {r['agreement']:.2%} | {r['accuracy']:.2%} | {r['ms_per_review']:.1f} |"
        for r in check["variants"]
    ]


# The same comparison on exports reading 256 tokens, the training length (issue 11's targets are worded there).
SCORING_AT_TRAINING_LENGTH = "## Scoring throughput at 256 tokens"


def scoring_section(scoring: dict, heading: str = "## Scoring throughput vs peers", options: str = "") -> list[str]:
    reference = fastest_pipeline(scoring["results"])
    lines = [
        f"{heading} (`benchmarks/bench_scoring.py{options}`, {scoring['date']})",
        f"{scoring['samples']} validation reviews, one run on {scoring['machine']}, max length "
        f"{scoring.get('max_length', 256)} for every runner"
        + (
            f", all on the weights of `{scoring['model']}` (PyTorch for the peers, its exports for ours)"
            if "model" in scoring
            else ""
        )
        + f". '× pipeline' and agreement are against the faster transformers pipeline run ({reference.get('batch', '32 a call')}); "
        "ours run with the scorer's default batching on CPU and with its earlier default (32 a call, one call at a time "
        "on all cores)"
        + (
            ", and int8 once more with every ONNX Runtime graph fusion on (a CPU session leaves out "
            f"{' and '.join(providers.CPU_SLOWER_FUSIONS)}, slower on int8 graphs)"
            if any(r["name"] == EVERY_FUSION for r in scoring["results"])
            else ""
        )
        + ". The peers truncate the head only "
        "(what a transformers pipeline does); ours reads head+tail as in training, so label agreement below 100% is by design "
        "and accuracy is the fair comparison.",
        "",
        "| runner | batch | reviews/s | × pipeline | agreement with pipeline | accuracy | achieved GFLOP/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in scoring["results"]:
        gf = r["achieved_gflops"] if r["achieved_gflops"] else "–"
        lines.append(
            f"| {r['name']} | {r.get('batch', '32 a call')} | {r['reviews_per_s']} | {r['ratio_to_pipeline']:.2f}× | "
            f"{r['agreement_with_pipeline']:.2%} | {r['accuracy']:.2%} | {gf} |"
        )
    return [
        *lines,
        "",
        *_fusion_gain(scoring["results"]),
        f"Plain fp32 matrix multiply in the same run (torch, 2048³): {scoring['matmul_fp32_gflops']} GFLOP/s. "
        "GFLOP/s counts the encoder's linear and attention FLOPs on the padded batches actually run; int8 runs "
        "integer dot products (VNNI), so its figure can exceed the fp32 matmul.",
    ]


def app_section(app: dict) -> list[str]:
    return [
        f"## App latency (`benchmarks/bench_app.py`, {app['date']})",
        f"HTTP through gradio_client to `python -m review_sentiment.app` with the bundled model, {app['repeats']} calls "
        f"each, on {app.get('machine', 'the machine of the scoring table')}.",
        "",
        "| input | endpoint | p50 ms | p95 ms | model alone, p50 ms | explained by |",
        "| --- | --- | --- | --- | --- | --- |",
        *(
            f"| {r['input']} | {r['endpoint']} | {r['p50_ms']} | {r['p95_ms']} | {r.get('model_p50_ms', '–')} | "
            f"{r.get('units', '–')} |"
            for r in app["results"]
        ),
        "",
        "`/predict` is one review; `/analyze` is one review with its occlusion explanation (at most 48 units and "
        "3,072 tokens in all, batched). "
        "'Model alone' is the same work called in-process, without the server: the rest is HTTP and Gradio's queue.",
    ]


def load_section(load: dict) -> list[str]:
    """bench_load's table: the app with many visitors at once."""
    lines = [
        f"## App under load (`benchmarks/bench_load.py`, {load['date']})",
        f"{load['clients']} gradio_client clients on loopback, each calling back to back for {load['seconds']:.0f} s "
        "(every 5th call of a client is /analyze, the others /predict of a short review) against "
        "`python -m review_sentiment.app` with the bundled model. Latency is the client's, queue wait included.",
        "",
        "| endpoint | calls | errors | calls/s | p50 ms | p95 ms | max ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in load["results"]:
        lines.append(
            f"| {r['endpoint']} | {r['calls']} | {r['errors']} | {r['calls_per_s']} | {r['p50_ms']} | "
            f"{r['p95_ms']} | {r['max_ms']} |"
        )
    if load.get("error_kinds"):
        lines += ["", "Errors: " + "; ".join(load["error_kinds"])]
    return lines


def window_section(window: dict) -> list[str]:
    """bench_window's table: the served model reading more or less of each review than it was trained on."""
    lines = [
        f"## Reading window (`benchmarks/bench_window.py`, {window['date']})",
        (f"`{window['model']}`" if "model" in window else "The bundled model")
        + f" (trained reading {window['trained_max_length']} tokens, "
        f"head+tail) on all {window['reviews']} validation reviews with longer or shorter head+tail windows, the graph "
        "unchanged" + (f"; {window['machine']}, {window['batch']}" if "machine" in window else "") + ".",
        "",
        "| max length | accuracy | reviews/s |",
        "| --- | --- | --- |",
    ]
    return lines + [f"| {r['max_length']} | {r['accuracy']:.2%} | {r['reviews_per_s']} |" for r in window["results"]]


def _score_gap(largest: float) -> str:
    return "identical scores" if largest == 0 else f"scores within {largest:.0e}"


def ray_section(ray: dict) -> list[str]:
    """bench_ray: --engine ray on simulated clusters of 1-CPU nodes against the local engine, and a node lost."""
    local, fault = ray["local"], ray["fault"]
    lines = [
        f"## Ray engine on a simulated cluster (`benchmarks/bench_ray.py`, {ray['date']})",
        f"{ray['rows']:,} IMDB train reviews (a seeded sample) in {ray['files']} CSV files, the bundled model, Ray "
        f"{ray['ray']}, on {ray['machine']}. Each node is a raylet with 1 CPU (`ray.cluster_utils.Cluster`), all on "
        "this one machine: the nodes share its cores, so the table measures the engine's overhead (joining, "
        "starting one actor per node, sending the model) and how evenly rows spread, not a speed-up. Seconds are "
        "the whole `score-csv` call, joining the cluster included.",
        "",
        "| engine | reviews/s | seconds | rows per node | rows once, in order | labels equal to local |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| local (2 threads) | {local['reviews_per_s']} | {local['seconds']} | | yes | |",
    ]
    for run in ray["clusters"]:
        lines.append(
            f"| ray, {run['nodes']} nodes × 1 CPU | {run['reviews_per_s']} | {run['seconds']} | "
            f"{', '.join(f'{n:,}' for n in run['rows_per_node'])} | {'yes' if run['in_order_once'] else 'NO'} | "
            f"{run['labels_equal_local']:,} of {run['rows']:,} ({_score_gap(run['max_score_difference'])}) |"
        )
    removed = (
        f"removed {fault['removed_at_s']:.0f} s into the run ({fault['shards_written_then']} of {fault['shards']} "
        "shards written by then)"
        if fault["worker_removed_mid_run"]
        else "NOT removed (the run ended first)"
    )
    return [
        *lines,
        "",
        f"Node lost: on 2 nodes, the worker node {removed}: the run "
        f"finished in {fault['seconds']} s (undisturbed: {ray['clusters'][0]['seconds']} s) with {fault['rows']:,} rows, "
        f"once each and in order: {'yes' if fault['in_order_once'] else 'NO'}; rows per node as received: "
        f"{', '.join(f'{n:,}' for n in fault['rows_per_node'])}; labels equal to the local engine's: "
        f"{fault['labels_equal_local']:,} of {fault['rows']:,} ({_score_gap(fault['max_score_difference'])}).",
    ]


def ratings_section(ratings: dict) -> list[str]:
    """bench_ratings: the IMDB star rating learned as 8 classes and as 4 buckets on a fixed CPU budget."""
    return [
        f"## Star ratings (`benchmarks/bench_ratings.py`, {ratings['date']})",
        *_ratings_text(ratings),
        "",
        "Commands:",
        "",
        *(f"    {r['command']}" for r in ratings["results"]),
    ]


def _ratings_text(ratings: dict) -> list[str]:
    lines = [
        f"LoRA on the bundled MiniLM, the same budget for each: {ratings['training_reviews']:,} training reviews "
        f"({ratings['minutes']:g} minutes at the measured uncontended speed) on {ratings['machine']} "
        "(bf16, head+tail 256 tokens), the trainer's seeded stratified 10% hold-out of the IMDB train split's "
        '`rating` column. MAE is in rating points for 8 classes and in buckets for 4; "within one" is the share '
        "predicted the true class or a neighbour.",
        "",
        "| task | classes | validation reviews | accuracy | majority class | macro F1 | MAE | within one | epochs |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in ratings["results"]:
        lines.append(
            f"| {r['task']} ({r['meaning']}) | {len(r['labels'])} | {r['validation_reviews']} | {r['accuracy']:.2%} | "
            f"{r['majority_share']:.2%} | {r['macro_f1']:.3f} | {r['mean_absolute_error']:.2f} | "
            f"{r['within_one_class']:.2%} | {r['epochs_completed']:.2f} |"
        )
    return lines


def ratings_block(ratings: dict, kept: list[str]) -> str:
    """README's "Star ratings" block: the table (measured on ratings['date']) and how to reproduce it."""
    if ratings is None:
        return "\n".join(kept)
    return "\n".join(
        [
            f"Measured on {ratings['date']} by `python benchmarks/bench_ratings.py --dataset "
            f"../shared/data/imdb_train.parquet --minutes {ratings['minutes']:g}` (commands of each run in "
            "[BENCHMARKS.md](BENCHMARKS.md)):",
            "",
            *_ratings_text(ratings),
        ]
    )


def trials_section(trials: dict) -> list[str]:
    """bench_trials: training choices for the default model, each on the same budget of training reviews."""
    return [
        f"## Training choices (`benchmarks/bench_trials.py`, {trials['date']})",
        *_trials_text(trials),
        "",
        "Each run's metrics.json is kept in `benchmarks/results/trials/`. Command (each trial adds its options):",
        "",
        f"    python benchmarks/bench_trials.py --dataset ../shared/data/imdb_train.parquet --reviews {trials['training_reviews']}",
    ]


def _trials_text(trials: dict) -> list[str]:
    first = trials["results"][0]
    lines = [
        f"The bundled MiniLM-L6 trained on the same {first['reviews_seen']:,} training reviews in every trial "
        f"({first['steps']} steps of 16: `--reviews {trials['training_reviews']}` as a fraction of an epoch, written "
        "to 4 decimals, came to one step more; one pass in the trainer's seeded shuffle; bf16, head+tail 256 tokens, "
        "linear warm-up over 6% of steps), "
        f"judged once at the end in fp32 on all of the trainer's seeded stratified 10% hold-out, on {trials['machine']}. "
        "LoRA defaults: rank 16, alpha 32, every attention and feed-forward linear, rate 3e-4, linear decay. "
        "Seconds are wall time while other work shared the 2 cores: compare them only loosely.",
        "",
        "| trial | options | trained parameters | accuracy | macro F1 | ROC-AUC | ECE | val loss | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in trials["results"]:
        if (r["steps"], r["stop_reason"]) != (first["steps"], "completed"):
            raise ValueError(f"trial {r['trial']!r} ran {r['steps']} steps ({r['stop_reason']}): not the same budget")
        lines.append(
            f"| {r['trial']} | `{r['options']}` | {r['trainable_parameters']:,} | {r['accuracy']:.2%} | "
            f"{r['macro_f1']:.4f} | {r['roc_auc']:.4f} | {r['ece']:.3f} | {r['val_loss']:.3f} | {r['train_seconds']:.0f} |"
        )
    return lines


def trials_block(trials: dict | None, kept: list[str]) -> str:
    """README's "Training choices" block: the trials table (measured on trials['date'])."""
    if trials is None:
        return "\n".join(kept)
    return "\n".join(
        [
            f"Measured on {trials['date']} by `python benchmarks/bench_trials.py --dataset "
            f"../shared/data/imdb_train.parquet --reviews {trials['training_reviews']}`:",
            "",
            *_trials_text(trials),
        ]
    )


def memory_section(memory: dict) -> list[str]:
    return [
        f"## score-csv peak memory (`benchmarks/bench_memory.py`, {memory['date']})",
        "Generated short reviews, bundled model, default chunking.",
        "",
        "| rows | input MB | peak RSS MB | seconds | rows/s |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {r['rows']:,} | {r['input_mb']} | {r['peak_rss_mb']} | {r['seconds']} | {r['rows_per_s']} |"
            for r in memory["results"]
        ),
    ]


def int8_section(int8: dict) -> list[str]:
    """bench_int8: every int8 variant of the default run's weights on the same validation reviews."""
    ceilings = int8["ceilings"]
    lines = [
        f"## int8 variants (`benchmarks/bench_int8.py`, {int8['date']})",
        f"The weights of `{int8['model']}`; {int8['reviews']} validation reviews ({int8['data']}), one run on "
        f"{int8['machine']}, through the scorer ({int8['rows'][0].get('batching', 'batch 32')})"
        + (f", reading {int8['max_length']} tokens (the training length)" if "max_length" in int8 else "")
        + ". "
        "Batch dependence: the first 200 reviews scored alone vs in batches of 32"
        + (" and in the default batching" if "batch_probes" in int8["rows"][0] else "")
        + " (largest change of a score, labels flipped).",
        "",
        "| variant | size MB | accuracy | vs fp32 (points) | agreement with fp32 | reviews/s | × fp32 | batch max Δscore | flips "
        "| share of ceiling | share of mixed bound |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in int8["rows"]:
        lines.append(
            f"| {r['variant']} | {r['size_mb']} | {r['accuracy']:.2%} | {r['accuracy_vs_fp32_points']:+.2f} | "
            f"{r['agreement_with_fp32']:.2%} | {r['reviews_per_s']} | {r['speed_vs_fp32']:.2f}× | "
            f"{r['batch_max_abs_score_diff']:.2g} | {r['batch_label_flips']} | {r.get('share_of_ceiling', 0):.0%} | "
            f"{format(r['share_of_mixed_bound'], '.0%') if 'share_of_mixed_bound' in r else '–'} |"
        )
    return [
        *lines,
        "",
        f"Ceilings measured by ONNX Runtime in the same run (2048³): fp32 MatMul {ceilings['fp32_matmul_gops']} GFLOP/s, "
        f"u8×s8 MatMulInteger {ceilings['int8_matmulinteger_gops']} G int-ops/s; the share is the encoder's operations per "
        "review (unpadded) × reviews/s over the ceiling of its arithmetic (fp32 for fp32, int8 for the rest). "
        f"Attention's two products of activations are {int8.get('attention_share_of_flops', 0):.0%} of those operations "
        "and stay float in every int8 variant (a score must not depend on its batch, and softmax probabilities at one "
        "fixed int8 scale lose the small ones): the mixed bound runs the linear layers at the int8 ceiling and attention "
        "at the fp32 ceiling, the most any of these variants could reach.",
    ]


PROFILE_GROUPS = {  # profile_scoring's groups: column heading
    "int8 linear": "int8 linear",
    "float MatMul": "float MatMul",
    "fused attention": "fused attention",
    "softmax": "softmax",
    "elementwise (add, mul, where)": "add, mul, where",
    "layer norm, GELU": "layer norm, GELU",
    "quantize/dequantize": "(de)quantize",
    "other (reshape, transpose, gather, ...)": "other",
}


def profile_section(profile: dict) -> list[str]:
    """profile_scoring: where each model's kernel time goes, by batch size, from ONNX Runtime's profiler."""
    lines = [
        f"## Where the time goes (`benchmarks/profile_scoring.py`, {profile['date']})",
        f"ONNX Runtime's own profiler on {profile['machine']}: each model scores the first reviews of its validation "
        "hold-out at each "
        "batch size through the scorer (sorted by length, padded per batch, one call at a time on all cores: not the "
        "CPU default's concurrent single-thread calls); reviews/s from a plain pass, shares from a "
        "profiled one (its warm-up run left out). Shares are of all kernel time; 'attention core' is attention's own "
        "work on activations (Q·Kᵀ, scale, mask, softmax, ·V; not its projections; – where a fused `Attention` packs "
        "them in), 'inside runs' the share of the plain pass's wall time inside ONNX Runtime (the rest is tokenizing, "
        "padding, Python).",
    ]
    for model in profile["models"]:
        name = {"none": "fp32"}.get(model["quantization"], model["quantization"]) + (
            f" + {model['optimization']}" if model["optimization"] not in (None, "none") else ""
        )
        source = f", exported from `{model['source_model']}`" if model.get("source_model") else ""
        lines += [
            "",
            f"`{model['model']}` ({name}{source}, {model['max_length']} tokens, {model['reviews']} reviews):",
            "",
            "| batch | reviews/s | inside runs | attention core | " + " | ".join(PROFILE_GROUPS.values()) + " |",
            "| --- " * (4 + len(PROFILE_GROUPS)) + "|",
        ]
        for r in model["rows"]:
            cells = " | ".join(f"{r['groups'].get(group, 0.0):.0%}" for group in PROFILE_GROUPS)
            lines.append(
                f"| {r['batch_size']} | {r['reviews_per_s']} | {r['inside_runs']:.0%} | {_share(r['attention_core'])} | {cells} |"
            )
    return lines


def candidates_section(manifest: dict, evaluation: dict) -> list[str]:
    """The bundled model against each candidate trained to replace it (benchmarks/results/candidates/NAME.*.json:
    its exported int8 manifest and `sentiment evaluate` of that export), judged the same way."""
    rows = [("bundled", manifest, evaluation)]
    error = (evaluation["accuracy"] * (1 - evaluation["accuracy"]) / evaluation["count"]) ** 0.5  # binomial
    for path in sorted((OUT / "candidates").glob("*.manifest.json")):
        name = path.name.removesuffix(".manifest.json")
        rows.append((name, json.loads(path.read_text()), load(f"candidates/{name}.evaluate.json")))
    lines = [
        f"## Default model candidates (`sentiment train`, `sentiment export`, `sentiment evaluate`, "
        f"{max(model['created'][:10] for _, model, _ in rows)})",  # the newest model judged
        "Each model exported as the bundled one is (`scripts/ship_default_model.py`: static int8 QDQ, reading "
        f"{manifest['text_spec']['max_length']} tokens) and scored by `sentiment evaluate` on all "
        f"{evaluation['count']} validation reviews ({manifest['data']['split']}); fp32 figures are the training run's "
        "own, at its training length. ROC-AUC and Brier score use every score, not only which side of the "
        f"threshold it falls on; one standard error of the bundled model's int8 accuracy here is {100 * error:.2f} points.",
        "",
        "| model | method | lr | epochs (best step) | fp32 accuracy | fp32 ROC-AUC | int8 accuracy | int8 ROC-AUC "
        "| int8 Brier | int8 ECE |",
        "| --- " * 10 + "|",
    ]
    for name, model, ev in rows:
        hp, fp32, training = model["hyperparameters"], model["training_metrics"], model["training"]
        lines.append(
            f"| {name} | {METHOD_NAMES[method_of(model)]} | {hp['lr']:g} | {training['epochs_completed']} "
            f"({training['best_step']}) | {fp32['accuracy']:.2%} | {fp32['roc_auc']:.4f} | {ev['accuracy']:.2%} | "
            f"{ev['roc_auc']:.4f} | {ev['brier']:.4f} | {ev['ece']:.4f} |"
        )
    return lines


def _share(share: float | None) -> str:
    return "–" if share is None else f"{share:.0%}"


def calibration_section(manifest: dict, evaluation: dict) -> list[str]:
    """The shipped model's calibration (export) and accuracy vs coverage on all validation reviews (evaluate)."""
    c = manifest["calibration"]
    if c.get("applied"):
        fit = (
            f"Temperature {c['temperature']:.3f}, fitted at export on the int8 model's own logits; expected calibration "
            f"error ({c['ece_bins']} bins) {c['ece_before']:.4f} before, {c['ece']:.4f} after; Brier score "
            f"{c['brier_before']:.4f} → {c['brier']:.4f} ({c['measured_on']})."
        )
    else:
        fit = (
            f"No temperature (1): {c['reason']}. Expected calibration error ({c['ece_bins']} bins) {c['ece_before']:.4f}, "
            f"Brier score {c['brier_before']:.4f} on the {c['reviews']} validation reviews the export measured; a fitted "
            f"temperature would have given {c['ece']:.4f} and {c['brier']:.4f} (cross-fitted on two halves)."
        )
    return [
        f"## Confidence of the default model (`sentiment export` and `sentiment evaluate`, {manifest['created'][:10]})",
        fit,
        "",
        f"Accuracy vs coverage on all {evaluation['count']} validation reviews (`sentiment evaluate`, most confident kept; "
        f"ECE {evaluation['ece']:.4f}, Brier {evaluation['brier']:.4f}):",
        "",
        "| coverage | confidence threshold | accuracy |",
        "| --- | --- | --- |",
        *(f"| {r['coverage']:.0%} | {r['threshold']:.3f} | {r['accuracy']:.2%} |" for r in evaluation["coverage"]),
    ]


INSTALL_ROWS = {"serving": "serving", "serving+app": "serving + app", "full": "full"}


def yes_no(flag: bool | None) -> str:
    return "–" if flag is None else ("yes" if flag else "no")


def install_checks(installs: dict) -> list[str]:
    """One bullet per install with what bench_install checked in it."""
    lines = []
    serving = installs["serving"]["checks"]
    lines.append(
        f"- serving: `score-csv examples/reviews.csv` exit {serving['score_csv_exit']}, "
        f"{serving['score_csv_rows_out']} of {serving['score_csv_rows_in']} rows written "
        f"({'ok' if serving['score_csv_ok'] else 'FAILED'}); `import torch` fails: {yes_no(serving['torch_absent'])}; "
        f"`import gradio` fails: {yes_no(serving['gradio_absent'])}."
    )
    if "serving+app" in installs:
        lines.append(
            f"- serving + app: `import gradio` works: {yes_no(installs['serving+app']['checks']['gradio_importable'])}."
        )
    if "full" in installs:
        full = installs["full"]["checks"]
        lines.append(
            f"- full: `import torch` works: {yes_no(full['torch_importable'])}; "
            f"`import gradio` works: {yes_no(full['gradio_importable'])}."
        )
    return lines


def help_timings(startup: dict) -> list[str]:
    """A table of the --help wall times, one column per venv measured, and what building the parser imported."""
    venvs = [name for name in ("serving", "dev") if name in startup]
    titles = {"serving": "serving venv, ms", "dev": "full dev venv, ms"}

    def cell(result: dict) -> str:
        if not result.get("exists", True):
            return "–"
        return f"{result['median_s'] * 1000:.0f}" + ("" if result["ok"] else " (exit ≠ 0)")

    commands = list(startup[venvs[0]]["help"]) if venvs else []
    lines = [
        "| command | " + " | ".join(titles[v] for v in venvs) + " |",
        "| --- |" + " --- |" * len(venvs),
        *(f"| `{c}` | " + " | ".join(cell(startup[v]["help"][c]) for v in venvs) + " |" for c in commands),
    ]
    for name in venvs:
        found = startup[name]["parser_imports"]
        lines += [
            "",
            f"Building the `sentiment` parser in the {titles[name].removesuffix(', ms')} imports torch: "
            f"{yes_no(found['imports_torch'])}, gradio: {yes_no(found['imports_gradio'])} (`python -X importtime`).",
        ]
    return lines


def install_section(install: dict) -> list[str]:
    """bench_install: size and install time per install, the checks, and the CLIs' --help start-up times."""
    machine, installs = install["machine"], install["installs"]
    cache = "warm" if install["pip_cache_before"]["present"] else "empty"
    lines = [
        f"## Install size and start-up (`benchmarks/bench_install.py`, {install['date']})",
        f"Fresh venvs, non-editable `pip install` of the repo, pip cache {cache} at the start; size is every file under the "
        f"venv (`du -sb`). CPU: {machine['cpu']}, {machine['cores']} cores, load average "
        f"{machine['load_average_at_start'][0]} at the start.",
        "",
        "| install | pip install | size MB | install s |",
        "| --- | --- | --- | --- |",
    ]
    for key, label in INSTALL_ROWS.items():
        if key in installs:
            row = installs[key]
            steps = ", then ".join(f"`{step['pip_install']}`" for step in row["steps"])
            lines.append(f"| {label} | {steps} | {row['size_mb']:.0f} | {row['install_seconds']:.0f} |")
    timed = [r for venv in install["startup"].values() for r in venv["help"].values() if "runs" in r]
    runs = f"median of {timed[0]['runs']} runs after a warm-up" if timed else "no command found"
    lines += ["", *install_checks(installs), "", f"`--help` wall time, {runs}:", ""]
    return lines + help_timings(install["startup"])


def load_optional(name: str) -> dict | None:
    return load(name) if (OUT / name).is_file() else None


def benchmarks_markdown() -> str:
    """BENCHMARKS.md: each section from its JSON when benchmarks/results/ has it, else as it was."""
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    kept = kept_sections(Path("BENCHMARKS.md"))

    def section(heading: str, name: str, build) -> list[str]:
        data = load_optional(name)
        return build(data) if data is not None else kept.get(heading, [])

    calibrated = "ece_before" in manifest.get("calibration", {})
    sections = [
        section("## Training throughput", "train.json", lambda d: training_section(d, manifest["training"]))
        if load_optional("train.json")
        else kept_training(kept.get("## Training throughput", []), manifest["training"]),
        accuracy_section(manifest),
        section("## Scoring throughput vs peers", "scoring.json", scoring_section),
        section(
            SCORING_AT_TRAINING_LENGTH,
            "scoring-256.json",
            lambda d: scoring_section(d, SCORING_AT_TRAINING_LENGTH, " --out benchmarks/results/scoring-256.json"),
        ),
        section("## App latency", "app.json", app_section),
        section("## App under load", "load.json", load_section),
        section("## score-csv peak memory", "memory.json", memory_section),
        section("## int8 variants", "int8.json", int8_section),
        section("## Where the time goes", "profile.json", profile_section),
        section("## Reading window", "window.json", window_section),
        section("## Star ratings", "ratings.json", ratings_section),
        section("## Training choices", "trials.json", trials_section),
        section("## Ray engine on a simulated cluster", "ray.json", ray_section),
        section(
            "## Confidence of the default model",
            "evaluate_default.json",
            lambda d: calibration_section(manifest, d) if calibrated else [],
        ),
        section("## Default model candidates", "evaluate_default.json", lambda d: candidates_section(manifest, d)),
        section("## Install size and start-up", "install.json", install_section),
    ]
    scoring = load_optional("scoring.json")
    lines = header_lines(scoring, manifest) if scoring else kept.get("", [])
    for body in sections:
        if body:
            lines += ["", *body]
    return "\n".join(lines) + "\n"


def kept_sections(path: Path) -> dict[str, list[str]]:
    """The sections of an existing BENCHMARKS.md, by heading (the text before its " (`script`, date)")."""
    sections: dict[str, list[str]] = {}
    if not path.is_file():
        return sections
    current: list[str] | None = sections.setdefault("", [])  # the header, before the first section
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            current = sections.setdefault(line.split(" (`", 1)[0], [])
        if current is not None:
            current.append(line)
    for body in sections.values():
        while body and not body[-1].strip():
            body.pop()
    return sections


def model_block(manifest: dict, evaluation: dict | None) -> str:
    """README's paragraph on the bundled model (`evaluation`: `sentiment evaluate` of it on all validation reviews)."""
    check, metrics = manifest["export_check"], manifest["training_metrics"]
    int8, fp32 = check["variants"][-1], check["variants"][0]
    trained, served = manifest["hyperparameters"]["max_length"], manifest["text_spec"]["max_length"]
    shipped = (
        f" The shipped int8 model on all {evaluation['count']} held-out reviews (`sentiment evaluate`): "
        f"{evaluation['accuracy']:.2%}."
        if evaluation
        else ""
    )
    return (
        f"`src/review_sentiment/default_model/`: {manifest['base_model']} (MiniLM-L6, 384 hidden) + "
        f"{METHOD_NAMES[method_of(manifest)]}, trained on the IMDB "
        f"train split on this project's 2-core CPU and exported to int8 ONNX ({int8['size_mb']:.1f} MB; fp32 is "
        f"{fp32['size_mb']:.0f} MB, too large to bundle). Validation accuracy at training's end (fp32 PyTorch reading "
        f"{trained} tokens, {metrics['count']} held-out reviews, {manifest['data']['split']}): {metrics['accuracy']:.2%}. "
        f"Served, it reads {served} tokens of each review: on {check['validation_sample']} of those reviews int8 scores "
        f"{int8['accuracy']:.2%} against fp32 ONNX's {fp32['accuracy']:.2%} "
        f"({abs(100 * (fp32['accuracy'] - int8['accuracy'])):.1f} points "
        f"{'lower' if int8['accuracy'] < fp32['accuracy'] else 'higher'}, label agreement {int8['agreement']:.2%}); "
        "export `--quantize none` where that matters more than size and speed."
        + shipped
        + _int8_and_calibration(manifest)
        + " The model card (`default_model/README.md`) has the exact commands, commit, split, hyper-parameters, time "
        "and machine."
    )


def _int8_and_calibration(manifest: dict) -> str:
    int8, calibration = manifest.get("int8", {}), manifest.get("calibration", {})
    text = ""
    if int8.get("mode") == "static":
        text += (
            f" int8 is static ({int8['format']}, calibrated on {int8['calibration']['reviews']} training reviews), "
            "so a review scores the same alone or in any batch."
        )
    if calibration.get("applied"):
        text += (
            f" Confidence is calibrated (temperature {calibration['temperature']:.2f}; expected calibration error "
            f"{calibration['ece_before']:.3f} → {calibration['ece']:.3f})."
        )
    elif "ece_before" in calibration:
        text += (
            f" Its confidence needed no rescaling: expected calibration error {calibration['ece_before']:.3f} on "
            f"{calibration['reviews']} validation reviews ({calibration['reason']})."
        )
    return text


def numbers_block(kept: list[str]) -> str:
    """README's "Measured" list: the headline figure of each benchmark; a line whose JSON is not in
    benchmarks/results/ is kept as README has it (`kept`: the block's current lines)."""
    scoring, memory, app, train = (load_optional(n) for n in ("scoring.json", "memory.json", "app.json", "train.json"))

    def line(prefix: str, data: dict | None, build) -> str:
        return build(data) if data is not None else next((k for k in kept if k.startswith(prefix)), "")

    lines = [
        line("On ", scoring, lambda d: f"On {d['machine']} (2 cores, no GPU), {d['date']}:"),
        "",
        line("- Scoring:", scoring, _scoring_line),
        line("- score-csv peak memory:", memory, _memory_line),
        line("- App:", app, _app_line),
        line("- Training", train, _train_line),
    ]
    return "\n".join(lines)


def _fusion_gain(results: list[dict]) -> list[str]:
    """What leaving out the CPU-slower fusions gains: our int8 default against the same with every fusion."""
    every = next((r for r in results if r["name"] == EVERY_FUSION), None)
    if every is None:
        return []
    default = next((r for r in results if r["name"] == ours("int8") and r.get("batch") == every["batch"]), None)
    if default is None:
        return []
    return [
        f"A CPU session leaves out ONNX Runtime's graph optimizers {' and '.join(providers.CPU_SLOWER_FUSIONS)}: int8 "
        f"{default['reviews_per_s']} reviews/s against {every['reviews_per_s']} with every fusion "
        f"({default['reviews_per_s'] / every['reviews_per_s']:.2f}×), accuracy {default['accuracy']:.2%} against "
        f"{every['accuracy']:.2%} (a float rounding there can move an activation across an int8 step).",
        "",
    ]


def _scoring_line(scoring: dict) -> str:
    runs = (r for r in scoring["results"] if r["name"].startswith("(c)") and r["name"] != EVERY_FUSION)
    best = max(runs, key=lambda r: r["reviews_per_s"])
    reference = fastest_pipeline(scoring["results"])
    earlier = [
        r for r in scoring["results"] if r["name"] == best["name"] and r.get("batch") == EARLIER_DEFAULT.describe()
    ]
    return (
        f"- Scoring: {best['name'].removeprefix('(c) ')} {best['reviews_per_s']} reviews/s = {best['ratio_to_pipeline']:.2f}× a "
        f"transformers pipeline on the same model ({reference['reviews_per_s']} reviews/s at its faster batch size"
        + (f"; the weights of `{scoring['model']}`" if "model" in scoring else "")
        + "), accuracy "
        f"{best['accuracy']:.2%} vs {reference['accuracy']:.2%} on {scoring['samples']} validation reviews"
        + (
            f"; {best['reviews_per_s'] / earlier[0]['reviews_per_s']:.2f}× the same model in 32-review calls"
            if earlier and earlier[0] is not best
            else ""
        )
        + "."
    )


def _memory_line(memory: dict) -> str:
    sizes = ", ".join(f"{r['peak_rss_mb']:.0f} MB at {r['rows']:,} rows" for r in memory["results"])
    earlier = f", {EARLIER_MACHINE[1]}" if memory["date"] < EARLIER_MACHINE[0] else ""
    return f"- score-csv peak memory: {sizes} ({memory['date']}{earlier})."


def _app_line(app: dict) -> str:
    long_explain = next(r for r in app["results"] if r["input"].startswith("long") and r["endpoint"] == "/analyze")
    return (
        f"- App: a 300-word review explained in p50 {long_explain['p50_ms'] / 1000:.2f} s "
        f"(p95 {long_explain['p95_ms'] / 1000:.2f} s)"
        + (f" on {app['machine']}, {app['date']}." if "machine" in app else ".")
    )


def _train_line(train: dict) -> str:
    speeds = ", ".join(f"{r['reviews_per_s']:.1f} reviews/s {r['precision']}" for r in train["results"])
    return f"- Training (LoRA, MiniLM, 256 tokens): {speeds}{bf16_note(train)}."


def replace_readme_blocks(blocks: dict[str, str]) -> None:
    """Put each block between README.md's `<!-- name:start -->` and `<!-- name:end -->` markers."""
    readme = Path("README.md").read_text()
    for name, block in blocks.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        head, rest = readme.split(start, 1)
        readme = head + start + "\n" + block + "\n" + end + rest.split(end, 1)[1]
    Path("README.md").write_text(readme)


def readme_block(name: str) -> list[str]:
    readme = Path("README.md").read_text()
    return readme.split(f"<!-- {name}:start -->", 1)[1].split(f"<!-- {name}:end -->", 1)[0].strip().splitlines()


def main() -> None:
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    Path("BENCHMARKS.md").write_text(benchmarks_markdown())
    print(Path("BENCHMARKS.md").read_text())
    replace_readme_blocks(
        {
            "model": model_block(manifest, load_optional("evaluate_default.json")),
            "numbers": numbers_block(readme_block("numbers")),
            "ratings": ratings_block(load_optional("ratings.json"), readme_block("ratings")),
            "trials": trials_block(load_optional("trials.json"), readme_block("trials")),
        }
    )


if __name__ == "__main__":
    main()
