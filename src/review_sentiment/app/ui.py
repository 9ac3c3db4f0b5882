"""Gradio app on ONNX Runtime: one review with an explanation, a batch tab, and the model's facts.

Run with `sentiment app` or `python -m review_sentiment.app`. Imports neither torch nor transformers.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from pathlib import Path

import gradio as gr

from ..card import model_name, short_model_name
from ..errors import UserError
from ..scorer import Scorer
from . import MIN_CONFIDENCE
from .batch_tab import BATCH_CSS, MAX_UPLOAD_MB, score_upload, text_column_choice  # noqa: F401 (the app's API)
from .batch_tab import batch_tab as _batch_tab
from .colors import strength_colors
from .review import (  # noqa: F401 (the app's API)
    MAX_REVIEW_CHARS,
    NO_WORDS,
    PredictAnswer,
    PredictClassesAnswer,
    analyze,
    predict_answer,
    too_long,
)

log = logging.getLogger(__name__)

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
EXAMPLE_LABELS = [
    "An absolute delight…",
    "A lifeless, plodding mess…",
    "Oh great, another car chase… (sarcasm)",
    "Wonderful cast, thin script… (mixed)",
    "A 300-word thriller review…",
]
# Gradio's HighlightedText breaks lines anywhere (word-break: break-all), cutting words ("murde r") even on a
# desktop: wrap between words, and inside one only when a single word is wider than the line.
CSS = "#words .textfield, #words .token, #words .text { word-break: normal; overflow-wrap: break-word; }" + BATCH_CSS


def model_facts(scorer: Scorer) -> str:
    manifest = scorer.manifest
    metrics = manifest.get("validation_metrics", {})
    rows = [
        ("model", scorer.folder.name),
        ("base model", model_name(manifest.get("base_model", "n/a"))),
        ("quantization", manifest.get("quantization")),
        ("graph optimization", manifest.get("optimization")),
        ("provider in use", scorer.provider),
        ("labels (in the order of the logits)", ", ".join(scorer.labels)),
        (
            "max length / truncation",
            f"{manifest['text_spec']['max_length']} tokens / {manifest['text_spec']['truncation']}",
        ),
        ("validation accuracy", f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "n/a"),
        ("validation macro F1", f"{metrics['macro_f1']:.4f}" if "macro_f1" in metrics else "n/a"),
        ("validation ROC-AUC", f"{metrics['roc_auc']:.4f}" if "roc_auc" in metrics else "n/a"),
        ("validation split", manifest.get("data", {}).get("split", "n/a")),
        ("temperature (calibration)", manifest.get("temperature", "none (not calibrated)")),
        ("calibration error (ECE)", _served_ece(manifest.get("calibration", {}))),
        ("metrics measured on", metrics.get("measured_on", "n/a")),
        ("exported", manifest.get("created")),
    ]
    return "| about the model | value |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def _served_ece(calibration: dict) -> str:
    """The expected calibration error of the confidence the app shows: after the temperature when one is
    applied, else as measured (temperature 1)."""
    ece = calibration.get("ece") if calibration.get("applied") else calibration.get("ece_before")
    return f"{ece:.4f} ({calibration['ece_bins']} bins, {calibration['reviews']} validation reviews)" if ece else "n/a"


def headline(scorer: Scorer) -> str:
    """What the model is and how good it is, in plain words for a visitor (the technical facts are in the Model tab)."""
    manifest = scorer.manifest
    metrics = manifest.get("validation_metrics", {})
    name = short_model_name(manifest.get("base_model", "BERT"))
    precision = {"int8": " and compressed to 8-bit integers", "fp16": " and served in half precision"}
    labels = scorer.labels
    which = (
        f"whether it is {labels[1]} or {labels[0]}"
        if len(labels) == 2
        else f"which of {', '.join(labels[:-1])} or {labels[-1]} it is"
    )
    line = (
        f"Paste a movie review: {name}, a small language model fine-tuned on movie reviews"
        f"{precision.get(manifest.get('quantization', 'none'), '')}, says {which} and which words made it think so."
    )
    if "accuracy" in metrics and metrics.get("count"):
        line += (
            f" It was right on {metrics['accuracy']:.1%} of {metrics['count']:,} reviews it had not seen in training."
        )
    return f"# Movie review sentiment\n{line}"


def build_demo(scorer: Scorer | None = None, min_confidence: float = MIN_CONFIDENCE) -> gr.Blocks:
    """The app around one shared ONNX Runtime session (`scorer`, the bundled model when None).

    Below `min_confidence` (calibrated) a review's label is shown as "not sure", and a scored file's rows
    get the status "uncertain" (the batch tab's slider starts there).
    """
    if not 0 <= min_confidence < 1:
        raise UserError(f"the app's --min-confidence must be at least 0 and below 1, not {min_confidence}")
    scorer = scorer or Scorer.load(os.environ.get("SENTIMENT_MODEL") or None)
    with gr.Blocks(title="Movie review sentiment", delete_cache=(900, 3600)) as demo:
        gr.Markdown(headline(scorer))
        with gr.Tab("Review"):
            _review_tab(scorer, min_confidence)
        with gr.Tab("Batch"):
            _batch_tab(scorer, min_confidence)
        with gr.Tab("Model"):
            gr.Markdown(model_facts(scorer))

        def predict(text: str) -> PredictAnswer:
            """Label, probability of the second label (positive for the default labels) and confidence of one review,
            without an explanation."""
            return predict_answer(scorer, text, min_confidence)

        if len(scorer.labels) > 2:
            predict.__doc__ = "Label, confidence and every label's probability of one review, without an explanation."
        # Evaluated annotations (this module's are strings): gr.api documents the output from them.
        answer = PredictAnswer if len(scorer.labels) == 2 else PredictClassesAnswer
        predict.__annotations__ = {"text": str, "return": answer}
        gr.api(predict, api_name="predict")
    demo.queue(default_concurrency_limit=2, max_size=QUEUE_MAX_SIZE)
    _public_api_only(demo)
    return demo


# Requests waiting beyond this are turned away ("queue full") instead of piling up on a public app.
QUEUE_MAX_SIZE = 64
PUBLIC_API = ("predict", "analyze")


def _public_api_only(demo: gr.Blocks) -> None:
    """Every event but /predict and /analyze is private: the page calls them, API clients and docs do not
    see them (Gradio would list `/lambda`, `/detect_text_column`, …)."""
    for fn in demo.fns.values():
        if fn.api_name not in PUBLIC_API:
            fn.api_visibility = "private"


def _review_tab(scorer: Scorer, min_confidence: float) -> None:
    review = gr.Textbox(label="Review", lines=6, placeholder="Paste a movie review…", elem_id="review")
    submit = gr.Button("Analyze", variant="primary", elem_id="analyze")
    label = gr.Label(label="Sentiment", num_top_classes=len(scorer.labels), elem_id="label")
    note = gr.Markdown(label="Note", elem_id="note")
    words = gr.HighlightedText(
        label="What pushed the prediction",
        # With more labels the categories name the predicted class ("towards neutral"), which changes with
        # each review: a legend of every class's four would mostly list colours not shown. Each coloured
        # word carries its category inline instead.
        show_legend=len(scorer.labels) == 2,
        combine_adjacent=False,
        color_map=strength_colors(scorer.labels),
        elem_id="words",
    )
    # Named examples: Gradio renders unnamed ones through a lazily loaded component that, on page load,
    # throws "Cannot read properties of undefined" once per example in the browser console (gradio 6.17).
    gr.Examples(EXAMPLES, inputs=review, example_labels=EXAMPLE_LABELS)
    run = lambda text: analyze(scorer, text, min_confidence)  # noqa: E731
    submit.click(run, review, [label, words, note], api_name="analyze")
    review.submit(run, review, [label, words, note])


def launch(demo: gr.Blocks, host: str | None = None, port: int | None = None, share: bool = False) -> None:
    """Bind to 127.0.0.1 unless told otherwise (Spaces sets GRADIO_SERVER_NAME=0.0.0.0).

    An explicit host or port wins over GRADIO_SERVER_NAME / GRADIO_SERVER_PORT, which win over the defaults.
    """
    host = host or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1")
    # Gradio 6.17's request handler names a Starlette constant that Starlette has deprecated: a warning
    # on every request that no one running the app can act on. Only that warning is silenced.
    warnings.filterwarnings("ignore", message=r".*HTTP_422_UNPROCESSABLE_ENTITY.* is deprecated", module="gradio")
    previous = _exit_on_sigterm()
    try:
        demo.launch(
            server_name=host,
            server_port=port or int(os.environ.get("GRADIO_SERVER_PORT", 7860)),
            share=share,
            max_file_size=f"{MAX_UPLOAD_MB}mb",
            show_error=True,
            css=CSS,
        )
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _exit_on_sigterm() -> signal.Handlers | None:
    """While the app runs, SIGTERM exits normally; returns the handler it replaced, or None.

    Docker, Spaces and `kill` stop the app with SIGTERM, whose default action skips atexit, and with it
    the removal of the batch tab's scratch folders (batch_tab.remove_scratch). Only from the main thread,
    and only where no handler is installed already.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        return None
    return signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


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
