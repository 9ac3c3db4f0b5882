"""Which words pushed a prediction which way: occlusion on ONNX Runtime, with a bounded cost.

Each unit (a word; for long reviews a sentence; for very long ones a group of sentences) is removed in
turn and the review re-scored; the drop in the log-odds of positive is that unit's weight (log-odds,
not probability, because a confident prediction's probability barely moves whatever is removed). There are never more
than `max_units` units, so a review costs at most `max_units + 1` rows of at most `max_length` tokens,
whatever its length, run in a few batched session calls.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..scorer import Prediction, Scorer
from ..text import clean_text

_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")


def strength_colors(labels: tuple[str, ...]) -> dict[str, str]:
    """Legend categories named after the model's own two labels (green: towards the second)."""
    negative, positive = labels
    return {
        f"strongly {positive}": "#16a34a",
        positive: "#bbf7d0",
        negative: "#fecaca",
        f"strongly {negative}": "#dc2626",
    }


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    units: list[str]
    weights: list[float]  # log-odds of positive lost when the unit is removed; > 0 pushed towards positive
    granularity: str
    tokens: int
    truncated: bool

    def highlighted(self, labels: tuple[str, ...] = ("negative", "positive")) -> list[tuple[str, str | None]]:
        """(text, strength category) pairs for gr.HighlightedText; see `strength_colors`.

        Relative to the largest weight: above half is "strongly", above a tenth plain, else no label.
        """
        scale = max((abs(w) for w in self.weights), default=0.0) or 1.0
        pairs = []
        for unit, weight in zip(self.units, self.weights, strict=True):
            share = abs(weight) / scale
            direction = labels[1] if weight > 0 else labels[0]
            category = f"strongly {direction}" if share > 0.5 else direction if share > 0.1 else None
            pairs.append((unit + " ", category))
        return pairs

    def top(self, count: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(np.abs(self.weights))[::-1][:count]
        return [(self.units[i], self.weights[i]) for i in order]


def split_units(text: str, max_units: int) -> tuple[list[str], str]:
    """Words if there are few enough, else sentences, else consecutive sentences grouped to fit."""
    words = text.split()
    if len(words) <= max_units:
        return words, "word"
    sentences = [s for s in _SENTENCE_END.split(text) if s.strip()]
    if len(sentences) <= max_units:
        return sentences, "sentence"
    size = math.ceil(len(sentences) / max_units)
    return [" ".join(sentences[i : i + size]) for i in range(0, len(sentences), size)], "sentence group"


def explain(
    scorer: Scorer, text: str, max_units: int = 48, batch_size: int = 16, *, cleaned: bool = False
) -> Explanation:
    """Predict `text` and weigh each of its units by occlusion (`cleaned=True`: the caller cleaned it)."""
    cleaned_text = text if cleaned else clean_text(text)
    units, granularity = split_units(cleaned_text, max_units)
    variants = [cleaned_text] + [" ".join(units[:i] + units[i + 1 :]) for i in range(len(units))]
    logits = np.stack(list(scorer.iter_logits(variants, batch_size, cleaned=True)))
    log_odds = logits[:, 1] - logits[:, 0]
    tokens = scorer.encoder.count_tokens(cleaned_text)
    return Explanation(
        prediction=scorer.to_prediction(logits[0]),
        units=units,
        weights=[float(log_odds[0] - value) for value in log_odds[1:]],
        granularity=granularity,
        tokens=tokens,
        truncated=tokens > scorer.encoder.budget,
    )
