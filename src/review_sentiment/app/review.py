"""What the app answers for one review: /analyze (label confidences, highlighted words, a note) and
/predict (label and confidence, no explanation). Both refuse what score-csv would skip, with a message."""

from __future__ import annotations

import time
from typing import TypedDict

import gradio as gr

from ..scorer import Prediction, Scorer
from ..scoring import review_status
from . import MIN_CONFIDENCE
from .explain import explain

# Longer text is refused, never cut: cutting it would change what head+tail truncation reads, and the
# app would disagree with score-csv on the same review.
MAX_REVIEW_CHARS = 200_000


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
            f"This review has {result.tokens} tokens; the model reads {scorer.encoder.budget} of them "
            f"({spec.truncation}: "
            + (
                f"the first {head} and the last {scorer.encoder.budget - head}"
                if spec.truncation == "head+tail"
                else spec.truncation
            )
            + "); the grey part is not read, so it has no weight. "
        )
    if len(scorer.labels) == 2:
        meaning = f"Green pushed towards {scorer.labels[1]}, red towards {scorer.labels[0]}"
    else:
        meaning = f"Green pushed towards {result.prediction.label} (the prediction), red away from it"
    note += (
        f"Weights by hiding each {result.granularity} the model reads, in turn ({len(result.units)} "
        f"variant{'s' if len(result.units) != 1 else ''}) "
        f"in {time.perf_counter() - started:.2f} s on {scorer.provider}. {meaning}; strong colours for the "
        "largest effects."
    )
    return label_confidences(scorer, result.prediction), result.highlighted(scorer.labels), note


def label_confidences(scorer: Scorer, prediction: Prediction) -> dict[str, float]:
    """What the Sentiment panel shows: every class's probability, the most probable first."""
    if len(scorer.labels) == 2:
        negative, positive = scorer.labels
        return {positive: prediction.score, negative: 1 - prediction.score}
    return dict(sorted(prediction.probabilities.items(), key=lambda item: -item[1]))


# score-csv gives such rows a "skipped: …" status (scoring.review_status); the app refuses them alike.
NO_WORDS = "This review has no words to read (only numbers, dates, symbols or HTML): nothing to score."


def too_long(text: str) -> str:
    return (
        f"This review has {len(text):,} characters; the app takes up to {MAX_REVIEW_CHARS:,}. "
        "Score longer texts with score-csv."
    )


class PredictAnswer(TypedDict):
    """What /predict answers for a two-label model (its type is the endpoint's documented output)."""

    label: str
    score: float  # probability of the second label
    confidence: float  # probability of the predicted label
    sure: bool  # confidence at or above the app's threshold
    provider: str  # the ONNX Runtime execution provider that ran it


class PredictClassesAnswer(TypedDict):
    """What /predict answers for a model of more than two labels: no one class is "the" score."""

    label: str
    confidence: float  # probability of the predicted label
    probabilities: dict[str, float]  # every label's probability, in the model's label order
    sure: bool
    provider: str


def predict_answer(scorer: Scorer, text: str, min_confidence: float) -> PredictAnswer | PredictClassesAnswer:
    """/predict: label and confidence of one review (and the class probabilities), without an explanation."""
    if not text or not text.strip():
        raise gr.Error("empty review")
    if len(text) > MAX_REVIEW_CHARS:
        raise gr.Error(too_long(text))
    status, cleaned = review_status(text)
    if status != "ok":
        raise gr.Error(NO_WORDS)
    p = scorer.to_prediction(scorer.logits([cleaned], cleaned=True)[0])
    sure = p.confidence >= min_confidence
    if len(scorer.labels) == 2:
        return {
            "label": p.label,
            "score": p.score,
            "confidence": p.confidence,
            "sure": sure,
            "provider": scorer.provider,
        }
    return {
        "label": p.label,
        "confidence": p.confidence,
        "probabilities": p.probabilities,
        "sure": sure,
        "provider": scorer.provider,
    }
