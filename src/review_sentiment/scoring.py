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
from .text import clean_text

if TYPE_CHECKING:
    from .scorer import Scorer

RESULT_COLUMNS = ("label", "score", "confidence", "status")
NO_WORDS_STATUS = "skipped: no words"


def probabilities(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """The label rule, written once: the most probable class; a tie goes to the first label.

    Every stage (training's evaluation, export's check, score-csv, the app, Ray) decides through this.
    """
    return np.asarray(probs).argmax(axis=-1)


def result_names(columns: list[str]) -> dict[str, str]:
    """Our column names, suffixed with _pred (then _pred2, …) where the input already has that name."""
    names = {}
    for name in RESULT_COLUMNS:
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


def score_frame(scorer: Scorer, frame: pd.DataFrame, text_column: str, batch_size: int = 32) -> pd.DataFrame:
    """The frame with label/score/confidence/status added; bad rows get a status, never an exception."""
    names = result_names([str(c) for c in frame.columns])
    statuses, texts = row_statuses(frame[text_column], frame.attrs.get("bad_line"))
    rows = [i for i, status in enumerate(statuses) if status == "ok"]
    label = np.full(len(frame), None, dtype=object)
    score = np.full(len(frame), np.nan)
    confidence = np.full(len(frame), np.nan)
    if texts:
        probs = probabilities(scorer.logits(texts, batch_size, cleaned=True))
        label[rows] = [scorer.labels[i] for i in predicted_classes(probs)]
        score[rows] = probs[:, 1]
        confidence[rows] = probs.max(axis=1)
    out = frame.copy()
    out.attrs = {}
    out[names["label"]] = label
    # Nullable floats: a row with no score has a missing value (empty in CSV, null elsewhere).
    out[names["score"]] = pd.array(score.round(6), dtype="Float64")
    out[names["confidence"]] = pd.array(confidence.round(6), dtype="Float64")
    out[names["status"]] = statuses
    return out


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    skipped: int = 0
    bad_lines: int = 0
    scored_now: int = 0  # scored by this run (a resumed run also counts what it found done)
    labels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    provider: str = ""
    model: str = ""
    output: str = ""

    @staticmethod
    def counts(frame: pd.DataFrame, names: dict[str, str]) -> dict:
        """What one scored chunk adds to the summary (kept per part, so a resumed run counts it too)."""
        ok = frame[names["status"]] == "ok"
        return {
            "rows": len(frame),
            "scored": int(ok.sum()),
            "labels": dict(Counter(frame.loc[ok, names["label"]].tolist())),
        }

    def record(self, counts: dict) -> None:
        self.rows += counts["rows"]
        self.scored += counts["scored"]
        self.skipped += counts["rows"] - counts["scored"]
        for label, count in counts["labels"].items():
            self.labels[label] = self.labels.get(label, 0) + count

    def shares(self) -> str:
        if not self.scored:
            return "no review scored"
        return ", ".join(f"{label} {count / self.scored:.1%}" for label, count in sorted(self.labels.items()))

    def text(self) -> str:
        rate = self.scored_now / self.seconds if self.seconds else 0.0
        return (
            f"rows {self.rows}, scored {self.scored}, skipped {self.skipped}, bad lines {self.bad_lines}; "
            f"{self.shares()}; {rate:.1f} reviews/s in {self.seconds:.1f} s on {self.provider}; "
            f"model {self.model}; output {self.output}"
        )
