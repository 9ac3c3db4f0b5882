"""The scoring rules every path shares (score-csv, the Ray engine, the app, export's checks).

The label rule, which cells are scored (and the status of those that are not), the result columns
and the summary of a run: written once here, so the same review gets the same answer everywhere.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .columns import has_words, is_missing
from .labels import class_index, probability_columns
from .text import LABELS, clean_text

if TYPE_CHECKING:
    from .scorer import Scorer

RESULT_COLUMNS = ("label", "score", "confidence", "status")  # two labels; more: see result_keys
NO_WORDS_STATUS = "skipped: no words"
UNCERTAIN = "uncertain"  # scored, but less confident than --min-confidence
SCORED = ("ok", UNCERTAIN)


def probabilities(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """The label rule, written once: the most probable class; a tie goes to the first label.

    Every stage (training's evaluation, export's check, score-csv, the app, Ray) decides through this.
    """
    return np.asarray(probs).argmax(axis=-1)


def result_keys(labels: tuple[str, ...] = LABELS) -> tuple[str, ...]:
    """The columns scoring adds, in order: two labels have `score` (the second label's probability);
    more have one probability column per class (`p_<label>`) instead."""
    if len(labels) == 2:
        return RESULT_COLUMNS
    return ("label", "confidence", *probability_columns(labels), "status")


def result_names(columns: list[str], labels: tuple[str, ...] = LABELS) -> dict[str, str]:
    """Our column names, suffixed with _pred (then _pred2, …) where the input already has that name."""
    names = {}
    for name in result_keys(labels):
        new, i = name + "_pred" if name in columns else name, 1
        while new in columns:
            i += 1
            new = f"{name}_pred{i}"
        names[name] = new
    return names


def review_status(value: object) -> tuple[str, str | None]:
    """The rule for one cell: ("ok", its cleaned text), or (why it is not scored, None).

    score-csv, Ray and the app all decide through it, so the same text gets the same answer.
    """
    if is_missing(value):
        return "skipped: missing", None
    if not isinstance(value, str):
        return f"skipped: not text ({type(value).__name__})", None
    cleaned = clean_text(value)
    if not cleaned:
        return "skipped: empty", None
    if not has_words(cleaned):
        return NO_WORDS_STATUS, None  # an id, a date or a star count is never scored as a review
    return "ok", cleaned


def row_statuses(values: pd.Series, flags: list[str] | None) -> tuple[list[str], list[str]]:
    """Each row's status ("ok" or why it is not scored) and the cleaned texts of the "ok" rows."""
    statuses, texts = [], []
    for value, flag in zip(values, flags or [""] * len(values), strict=True):
        status, cleaned = (flag, None) if flag else review_status(value)
        statuses.append(status)
        if cleaned is not None:
            texts.append(cleaned)
    return statuses, texts


def score_frame(
    scorer: Scorer,
    frame: pd.DataFrame,
    text_column: str,
    batch_size: int | None = None,
    min_confidence: float | None = None,
) -> pd.DataFrame:
    """The frame with the result columns (`result_keys(scorer.labels)`) added; bad rows get a status, never an
    exception.

    Below `min_confidence` a row keeps its label but its status is "uncertain": set aside, not dropped.
    """
    labels = tuple(scorer.labels)
    names = result_names([str(c) for c in frame.columns], labels)
    statuses, texts = row_statuses(frame[text_column], frame.attrs.get("bad_line"))
    rows = [i for i, status in enumerate(statuses) if status == "ok"]
    label = np.full(len(frame), None, dtype=object)
    probs = np.full((len(frame), len(labels)), np.nan)
    if texts:
        probs[rows] = probabilities(scorer.logits(texts, batch_size, cleaned=True))
        label[rows] = [labels[i] for i in predicted_classes(probs[rows])]
    confidence = probs.max(axis=1)  # NaN where a row was not scored
    if min_confidence is not None:
        statuses = [
            UNCERTAIN if s == "ok" and c < min_confidence else s for s, c in zip(statuses, confidence, strict=True)
        ]
    # every float column scoring may add; result_keys decides which it does add
    floats = {
        "confidence": confidence,
        "score": probs[:, -1],
        **dict(zip(probability_columns(labels), probs.T, strict=True)),
    }
    out = frame.copy()
    out.attrs = {}
    for key in result_keys(labels):
        if key == "label":
            out[names[key]] = label
        elif key == "status":
            out[names[key]] = statuses
        else:  # nullable floats: a row with no score has a missing value (empty in CSV, null elsewhere)
            out[names[key]] = pd.array(floats[key].round(6), dtype="Float64")
    return out


def gold_class(value: object, labels: tuple[str, ...]) -> int | None:
    """A gold label cell as a class index (the model's own label names; for two, also 0/1, pos/neg, …)."""
    return None if is_missing(value) else class_index(value, labels)


def _gold_counts(frame: pd.DataFrame, names: dict[str, str], gold: pd.Series, labels: tuple[str, ...]) -> dict:
    """Labelled and correctly labelled scored rows, overall and among the confident ("ok") ones, and the gold
    values that name no label (counted, a few kept as examples)."""
    truth = [gold_class(value, labels) for value in gold]
    status = frame[names["status"]].astype(object).to_numpy()
    predicted = frame[names["label"]].astype(object).to_numpy()  # NA where a row was not scored
    known = np.array([t is not None for t in truth], dtype=bool) & np.isin(status, SCORED)
    right = np.zeros(len(truth), dtype=bool)
    for i in np.flatnonzero(known):
        right[i] = labels[truth[i]] == predicted[i]
    sure = status == "ok"
    unrecognised = [str(v) for v, t in zip(gold, truth, strict=True) if t is None and not is_missing(v)]
    return {
        "labelled": int(known.sum()),
        "correct": int(right.sum()),
        "confident_labelled": int((known & sure).sum()),
        "confident_correct": int((right & sure).sum()),
        "unrecognised": len(unrecognised),
        "examples": sorted(set(unrecognised))[:5],
    }


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    uncertain: int = 0
    skipped: int = 0
    bad_lines: int = 0
    scored_now: int = 0  # scored by this run (a resumed run also counts what it found done)
    labels: dict[str, int] = field(default_factory=dict)
    gold: dict[str, int] = field(default_factory=dict)  # labelled / correct, overall and where confident
    unrecognised: list[str] = field(default_factory=list)  # a few gold values that name no label
    label_column: str | None = None
    classes: tuple[str, ...] = LABELS  # the model's labels, which the gold values must name
    min_confidence: float | None = None
    seconds: float = 0.0
    provider: str = ""
    model: str = ""
    output: str = ""

    @staticmethod
    def counts(frame: pd.DataFrame, names: dict[str, str], gold: pd.Series | None = None, labels=()) -> dict:
        """What one scored chunk adds to the summary (kept per part, so a resumed run counts it too)."""
        status = frame[names["status"]]
        scored = status.isin(SCORED)
        counts = {
            "rows": len(frame),
            "scored": int(scored.sum()),
            "uncertain": int((status == UNCERTAIN).sum()),
            "labels": dict(Counter(frame.loc[scored, names["label"]].tolist())),
        }
        if gold is not None:
            counts["gold"] = _gold_counts(frame, names, gold, labels)
        return counts

    def record(self, counts: dict) -> None:
        self.rows += counts["rows"]
        self.scored += counts["scored"]
        self.uncertain += counts.get("uncertain", 0)
        self.skipped += counts["rows"] - counts["scored"]
        for label, count in counts["labels"].items():
            self.labels[label] = self.labels.get(label, 0) + count
        for key, count in counts.get("gold", {}).items():
            if key == "examples":
                self.unrecognised = sorted(set(self.unrecognised) | set(count))[:5]
            else:
                self.gold[key] = self.gold.get(key, 0) + count

    def shares(self) -> str:
        """Each class's share of the scored rows, in the model's order; a class no row got shows 0.0%, so
        a missing class is visible rather than silently absent."""
        if not self.scored:
            return "no review scored"
        order = list(self.classes) + sorted(set(self.labels) - set(self.classes))
        return ", ".join(f"{label} {self.labels.get(label, 0) / self.scored:.1%}" for label in order)

    def accuracy(self) -> str:
        """Accuracy against the input's gold labels, overall and above --min-confidence; '' without labels."""
        if not self.gold.get("labelled"):
            return ""
        text = f"; accuracy {self.gold['correct'] / self.gold['labelled']:.2%} on {self.gold['labelled']} labelled"
        if self.min_confidence is not None and self.gold.get("confident_labelled"):
            confident = self.gold["confident_correct"] / self.gold["confident_labelled"]
            text += f", {confident:.2%} on the {self.gold['confident_labelled']} at or above {self.min_confidence:g}"
        return text

    def gold_warning(self) -> str | None:
        """What the user should know about the --label-column values, or None."""
        if not self.label_column:
            return None
        if self.gold.get("unrecognised"):
            names = ", ".join(self.classes)
            accepted = f"{names}, 0/1, neg/pos or true/false" if len(self.classes) == 2 else names
            return (
                f"{self.gold['unrecognised']} value(s) of {self.label_column!r} name no label (e.g. "
                f"{', '.join(map(repr, self.unrecognised))}): those rows are left out of the accuracy; gold labels "
                f"are the model's labels: {accepted}"
            )
        if self.scored and not self.gold.get("labelled"):
            return f"no scored row has a gold label in {self.label_column!r}: no accuracy to report"
        return None

    def text(self) -> str:
        rate = self.scored_now / self.seconds if self.seconds else 0.0
        uncertain = (
            f" (uncertain {self.uncertain}, below {self.min_confidence:g})" if self.min_confidence is not None else ""
        )
        return (
            f"rows {self.rows}, scored {self.scored}{uncertain}, skipped {self.skipped}, bad lines {self.bad_lines}; "
            f"{self.shares()}{self.accuracy()}; {rate:.1f} reviews/s in {self.seconds:.1f} s on {self.provider}; "
            f"model {self.model}; output {self.output}"
        )
