"""Gradio app on ONNX Runtime: one review with an explanation, a batch tab, and the model's facts.

Run with `sentiment app` or `python -m review_sentiment.app`. Imports neither torch nor transformers.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import gradio as gr
import pandas as pd

from ..batch.config import BatchConfig
from ..batch.formats import FORMATS, format_of
from ..batch.score_file import score_file
from ..batch.tables import TableReader
from ..columns import TEXT_COLUMNS, detect_column, text_like
from ..errors import UserError
from ..scorer import Scorer
from ..scoring import review_status
from . import MIN_CONFIDENCE
from .explain import explain, strength_colors

log = logging.getLogger(__name__)

MAX_UPLOAD_MB = 50
# Longer text is refused, never cut: cutting it would change what head+tail truncation reads, and the
# app would disagree with score-csv on the same review.
MAX_REVIEW_CHARS = 200_000
EXAMPLES = [
    "An absolute delight from start to finish. The performances are warm and funny, and the last act had me in tears.",
    "A lifeless, plodding mess. The plot makes no sense and the dialogue is painful. I want those two hours back.",
    "Oh great, another two-hour car chase with no story. Just what cinema needed. Truly groundbreaking stuff.",
    "The cast is wonderful and the score is gorgeous, but the script is thin and the ending falls completely flat.",
    " ".join(
        [
            "I went in expecting a routine thriller and for the first hour that is exactly what I got: a detective with",
            "a troubled past, a city at night, a killer who leaves riddles. The middle stretch drags badly, with scenes",
            "that repeat what we already know and a romance subplot that goes nowhere. But then the film turns. The last",
            "forty minutes are tense, clever and genuinely surprising, the lead finally gets material worthy of her, and",
            "the final scene reframes everything before it. I left the cinema arguing about it with my friends, and I",
            "have thought about it every day since. Flawed, slow in places, but in the end a remarkable piece of work.",
        ]
        * 3
    ),
]
_SCRATCH_PREFIX = "sentiment-app-"


def analyze(scorer: Scorer, text: str, min_confidence: float = MIN_CONFIDENCE) -> tuple[dict, list, str]:
    """Label confidences, highlighted words and a note for one review; friendly messages, no traces.

    The note starts with "Not sure" when the (calibrated) confidence is below `min_confidence`.
    """
    if not text or not text.strip():
        return {}, [], "Type or paste a review first."
    if len(text) > MAX_REVIEW_CHARS:
        return {}, [], too_long(text)
    status, cleaned = review_status(text)
    if status != "ok":
        return {}, [], NO_WORDS
    started = time.perf_counter()
    result = explain(scorer, cleaned, cleaned=True)
    confidence = result.prediction.confidence
    note = (
        f"**Not sure**: {confidence:.1%} confident in {result.prediction.label}, below the app's "
        f"{min_confidence:.0%} threshold. "
        if confidence < min_confidence
        else ""
    )
    spec = scorer.encoder.spec
    if result.truncated:
        head = scorer.encoder.budget // 4 if spec.truncation == "head+tail" else scorer.encoder.budget
        note += (
            f"This review has {result.tokens} tokens; like in training the model reads {scorer.encoder.budget} of them "
            f"({spec.truncation}: "
            + (
                f"the first {head} and the last {scorer.encoder.budget - head}"
                if spec.truncation == "head+tail"
                else spec.truncation
            )
            + "). "
        )
    note += (
        f"Weights by removing each {result.granularity} in turn ({len(result.units)} variants) "
        f"in {time.perf_counter() - started:.2f} s on {scorer.provider}. Green pushed towards {scorer.labels[1]}, "
        f"red towards {scorer.labels[0]}; strong colours for the largest effects."
    )
    negative, positive = scorer.labels
    confidences = {positive: result.prediction.score, negative: 1 - result.prediction.score}
    return confidences, result.highlighted(scorer.labels), note


# score-csv gives such rows a "skipped: …" status (scoring.review_status); the app refuses them alike.
NO_WORDS = "This review has no words to read (only numbers, dates, symbols or HTML): nothing to score."


def too_long(text: str) -> str:
    return (
        f"This review has {len(text):,} characters; the app takes up to {MAX_REVIEW_CHARS:,}. "
        "Score longer texts with score-csv."
    )


def _clean_old_scratch(max_age_s: float = 3600) -> None:
    for folder in Path(tempfile.gettempdir()).glob(_SCRATCH_PREFIX + "*"):
        if time.time() - folder.stat().st_mtime > max_age_s:
            shutil.rmtree(folder, ignore_errors=True)


def text_column_choice(upload: str) -> tuple[list[str], str | None]:
    """The file's columns and the one that looks like reviews, or None: never a guess."""
    reader = TableReader(upload, format_of(upload), chunk_rows=50, on_bad_lines="skip")
    first = next(iter(reader), None)
    if first is None:
        return list(reader.columns), None
    columns = [str(c) for c in first.columns]
    try:
        chosen = detect_column(first, TEXT_COLUMNS, "text", None)
    except UserError:
        return columns, None
    return columns, chosen if text_like(first[chosen]) else None


def detect_text_column(upload: str | None) -> gr.Dropdown:
    """Columns of an uploaded file for the dropdown, the detected text column selected."""
    if not upload:
        return gr.Dropdown(choices=[], value=None)
    try:
        columns, chosen = text_column_choice(upload)
    except UserError as error:
        gr.Warning(str(error))
        return gr.Dropdown(choices=[], value=None)
    if chosen is None:
        gr.Warning("No column looks like review text: pick the text column before scoring.")
    return gr.Dropdown(choices=columns, value=chosen)


def score_upload(
    scorer: Scorer,
    upload: str | None,
    column: str | None,
    progress=gr.Progress(),  # noqa: B008
    min_confidence: float | None = None,
):
    """Score an uploaded file with the batch scorer's own code; preview, chart and download."""
    if not upload:
        raise gr.Error("Upload a CSV, TSV, Parquet or JSONL file first.")
    if not column:
        raise gr.Error("Pick the column that holds the review text first.")
    size_mb = os.path.getsize(upload) / 1e6
    if size_mb > MAX_UPLOAD_MB:
        raise gr.Error(
            f"The file is {size_mb:.0f} MB; the app takes up to {MAX_UPLOAD_MB} MB. Use `score-csv` for larger files."
        )
    _clean_old_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=_SCRATCH_PREFIX))
    source = scratch / Path(upload).name
    shutil.copy2(upload, source)
    progress(0, desc="scoring")
    try:
        cfg = BatchConfig(input=str(source), text_column=column, on_bad_lines="report", min_confidence=min_confidence)
        summary = score_file(cfg, scorer)
        output = Path(cfg.output)
    except UserError as error:
        raise gr.Error(str(error)) from None
    finally:
        source.unlink(missing_ok=True)  # the upload copy is not kept; only the scored file is served
    preview = next(iter(TableReader(str(output), format_of(str(output)), chunk_rows=20)), None)
    counts = {**summary.labels, "of which uncertain": summary.uncertain, "not scored": summary.skipped}
    chart = pd.DataFrame({"label": list(counts), "reviews": list(counts.values())})
    plot = gr.BarPlot(value=chart, x="label", y="reviews", y_lim=[0, int(max(counts.values()) * 1.1) + 1])
    return preview, plot, str(output), summary.text()


def model_facts(scorer: Scorer) -> str:
    manifest = scorer.manifest
    metrics = manifest.get("validation_metrics", {})
    rows = [
        ("model", scorer.folder.name),
        ("base model", manifest.get("base_model")),
        ("quantization", manifest.get("quantization")),
        ("graph optimization", manifest.get("optimization")),
        ("provider in use", scorer.provider),
        (
            "max length / truncation",
            f"{manifest['text_spec']['max_length']} tokens / {manifest['text_spec']['truncation']}",
        ),
        ("validation accuracy", f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "n/a"),
        ("validation macro F1", f"{metrics['macro_f1']:.4f}" if "macro_f1" in metrics else "n/a"),
        ("validation ROC-AUC", f"{metrics['roc_auc']:.4f}" if "roc_auc" in metrics else "n/a"),
        ("validation split", manifest.get("data", {}).get("split", "n/a")),
        ("temperature (calibration)", manifest.get("temperature", "none (not calibrated)")),
        ("calibration error (ECE)", f"{metrics['ece']:.4f}" if "ece" in metrics else "n/a"),
        ("metrics measured on", metrics.get("measured_on", "n/a")),
        ("exported", manifest.get("created")),
    ]
    return "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def build_demo(scorer: Scorer | None = None, min_confidence: float = MIN_CONFIDENCE) -> gr.Blocks:
    """The app around one shared ONNX Runtime session (`scorer`, the bundled model when None).

    Below `min_confidence` (calibrated) a review's label is shown as "not sure", and a scored file's rows
    get the status "uncertain" (the batch tab's slider starts there).
    """
    if not 0 <= min_confidence < 1:
        raise UserError(f"the app's --min-confidence must be at least 0 and below 1, not {min_confidence}")
    scorer = scorer or Scorer.load(os.environ.get("SENTIMENT_MODEL") or None)
    with gr.Blocks(title="Movie review sentiment", delete_cache=(900, 3600)) as demo:
        gr.Markdown(f"# Movie review sentiment\nRunning `{scorer.folder.name}` on **{scorer.provider}**.")
        with gr.Tab("Review"):
            _review_tab(scorer, min_confidence)
        with gr.Tab("Batch"):
            _batch_tab(scorer, min_confidence)
        with gr.Tab("Model"):
            gr.Markdown(model_facts(scorer))

        def predict(text: str) -> dict:
            """Label, probability of positive and confidence of one review, without an explanation."""
            if not text or not text.strip():
                raise gr.Error("empty review")
            if len(text) > MAX_REVIEW_CHARS:
                raise gr.Error(too_long(text))
            status, cleaned = review_status(text)
            if status != "ok":
                raise gr.Error(NO_WORDS)
            p = scorer.to_prediction(scorer.logits([cleaned], cleaned=True)[0])
            sure = p.confidence >= min_confidence
            return {
                "label": p.label,
                "score": p.score,
                "confidence": p.confidence,
                "sure": sure,
                "provider": scorer.provider,
            }

        gr.api(predict, api_name="predict")
    demo.queue(default_concurrency_limit=2, max_size=64)
    return demo


def _review_tab(scorer: Scorer, min_confidence: float) -> None:
    review = gr.Textbox(label="Review", lines=6, placeholder="Paste a movie review…", elem_id="review")
    submit = gr.Button("Analyze", variant="primary", elem_id="analyze")
    label = gr.Label(label="Sentiment", num_top_classes=2, elem_id="label")
    note = gr.Markdown(elem_id="note")
    words = gr.HighlightedText(
        label="What pushed the prediction",
        show_legend=True,
        combine_adjacent=False,
        color_map=strength_colors(scorer.labels),
    )
    gr.Examples(EXAMPLES, inputs=review)
    run = lambda text: analyze(scorer, text, min_confidence)  # noqa: E731
    submit.click(run, review, [label, words, note], api_name="analyze")
    review.submit(run, review, [label, words, note])


def _batch_tab(scorer: Scorer, min_confidence: float) -> None:
    upload = gr.File(
        label=f"Reviews file (CSV, TSV, Parquet, JSON Lines or JSON; up to {MAX_UPLOAD_MB} MB)",
        file_types=list(FORMATS),
        type="filepath",
        elem_id="upload",
    )
    column = gr.Dropdown(label="Text column", choices=[], allow_custom_value=True, elem_id="column")
    threshold = gr.Slider(
        0.0, 0.99, value=min_confidence, step=0.01, label="Mark rows below this confidence as uncertain"
    )
    score = gr.Button("Score file", variant="primary", elem_id="score")
    summary = gr.Markdown(elem_id="summary")
    chart = gr.BarPlot(x="label", y="reviews", title="Sentiment distribution")
    preview = gr.Dataframe(label="Preview (first 20 rows)", wrap=True)
    download = gr.File(label="Scored file", elem_id="download")
    upload.change(detect_text_column, upload, column)
    score.click(
        lambda f, c, t, progress=gr.Progress(): score_upload(scorer, f, c, progress, t),  # noqa: B008
        [upload, column, threshold],
        [preview, chart, download, summary],
        api_name="score_file",
    )


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Bind to 127.0.0.1 unless told otherwise (Spaces sets GRADIO_SERVER_NAME=0.0.0.0).

    An explicit host or port wins over GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which win over the defaults.
    """
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    demo.launch(
        server_name=host,
        server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
        share=share,
        max_file_size=f"{MAX_UPLOAD_MB}mb",
        show_error=True,
    )


def serve_in_background(
    command: list[str] | None = None, cwd: Path | None = None, env: dict | None = None, timeout_s: float = 90
) -> tuple[subprocess.Popen, str]:
    """Start an app process (`python -m review_sentiment.app` by default) on a free local port.

    Returns the process and its URL once it answers HTTP; for integration tests and benchmarks.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    command = command or [sys.executable, "-m", "review_sentiment.app"]
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the app exited: {process.stderr.read().decode()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)
            return process, url
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"the app did not answer within {timeout_s:.0f} s")


def __getattr__(name: str):
    # `demo` is built on first use, so importing this module (or `sentiment app --model …`) loads one model only.
    if name == "demo":
        globals()["demo"] = build_demo()
        return globals()["demo"]
    raise AttributeError(name)


if __name__ == "__main__":
    from ..log import setup_logging

    setup_logging()
    launch(build_demo())
