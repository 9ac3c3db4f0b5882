"""Which column holds the reviews, and what counts as a cell with words: shared by every stage."""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

from .errors import UserError
from .text import clean_text

TEXT_COLUMNS = ("text", "review", "reviews", "review_text", "content", "sentence", "comment", "body", "document")


def is_missing(value: object) -> bool:
    """None, NaN and pandas' NA: a cell with no value (an empty string is a value)."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def has_words(text: str) -> bool:
    """Whether a text has a letter at all: a number, a date, a price or "4/5" is never a review."""
    return any(ch.isalpha() for ch in text)


def text_like(values: Iterable) -> bool:
    """A column of reviews: mostly text cells, some of them with words (ids, dates, stars have none)."""
    present = [v for v in values if not is_missing(v) and v != ""]
    strings = [v for v in present if isinstance(v, str)]
    return bool(present) and 2 * len(strings) >= len(present) and any(has_words(clean_text(v)) for v in strings)


def numbers_only(values: Iterable) -> bool:
    """A column of ids, star counts or dates: every value has digits and no letter."""
    present = [v for v in values if not is_missing(v) and v != ""]
    return bool(present) and all(
        not isinstance(v, str) or (any(ch.isdigit() for ch in v) and not has_words(v)) for v in present
    )


def _normal(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def detect_column(frame: pd.DataFrame, candidates: tuple[str, ...], wanted: str, given: str | None) -> str:
    """The column named by `given`, else the first of `candidates` present (case and spacing ignored).

    For the text column, a candidate holding only numbers (a `text` column of ids) gives way to a later
    candidate holding text with words; with no candidate at all, the one column of text with words is
    taken (never a guess between several).
    """
    columns = [str(c) for c in frame.columns]
    if given is not None:
        if given not in columns:
            raise UserError(f"{wanted} column {given!r} not found; columns are: {', '.join(columns)}")
        return given
    by_normal: dict[str, str] = {}
    for c in columns:
        by_normal.setdefault(_normal(c), c)
    named = [by_normal[c] for c in candidates if c in by_normal]
    if wanted == "text":
        wordy = [c for c in named if not numbers_only(frame[c])]
        if named:
            return (wordy or named)[0]  # numbers only: its rows will say they have no words
        texts = [c for c in columns if text_like(frame[c])]
        if len(texts) == 1:
            return texts[0]
    elif named:
        return named[0]
    raise UserError(
        f"could not find the {wanted} column; columns are: {', '.join(columns)} (name it with --{wanted}-column)"
    )
