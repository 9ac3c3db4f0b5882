"""Label names and how a cell of a label column names one: written once, for training's data and for the
gold labels score-csv and evaluate compare against.

Two classes keep the names and words they always had (0/1, neg/pos, negative/positive, true/false mean
("negative", "positive")). Any other set of values becomes that many classes: numbers in numeric order
("1", "2", …, "10"; 3.0 is "3"), other text in alphabetical order, unless `--labels` fixes the names and
their order.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .errors import UserError
from .text import LABELS

# Gold labels as people write them for two classes: (negative, positive) = (0, 1).
BINARY_WORDS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1, "false": 0, "true": 1}
MAX_DISCOVERED = 100  # more distinct values than this is a text or id column, not labels (unless --labels)
_UNSAFE = re.compile(r"\W+")


def label_text(value: object) -> str:
    """A cell as label text: stripped, and a whole number written without its fraction (3.0 is "3")."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value).strip()
    number = as_number(text)
    return str(int(number)) if number is not None and number.is_integer() and "." in text else text


def as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def numeric_values(labels: Sequence[str]) -> np.ndarray | None:
    """The labels as numbers when every one is a number (star ratings), else None."""
    numbers = [as_number(label) for label in labels]
    return None if any(n is None for n in numbers) else np.array(numbers, dtype=np.float64)


def parse_labels(text: str) -> tuple[str, ...]:
    """`--labels a,b,c`: the names in order; two or more, each once."""
    names = tuple(label_text(name) for name in text.split(","))
    check_labels(names, "--labels")
    return names


def check_labels(labels: Sequence[str], where: str = "labels") -> None:
    if len(labels) < 2:
        raise UserError(f"{where} needs at least two labels, not {list(labels)}")
    if any(not name for name in labels):
        raise UserError(f"{where} has an empty label name: {list(labels)}")
    folded = [name.lower() for name in labels]
    repeated = sorted({name for name in labels if folded.count(name.lower()) > 1})
    if repeated:
        raise UserError(f"{where} names {repeated} more than once (labels are matched ignoring case)")


def class_index(value: object, labels: Sequence[str]) -> int | None:
    """A gold cell as a class index: a label's name (any case), or for two labels also 0/1, neg/pos, …"""
    text = label_text(value)
    folded = [name.lower() for name in labels]
    if text.lower() in folded:
        return folded.index(text.lower())
    return BINARY_WORDS.get(text.lower()) if len(labels) == 2 else None


def discovered_labels(texts: Iterable[str]) -> tuple[str, ...]:
    """The label names a column's distinct values make, in their natural order (see the module)."""
    distinct = sorted(set(texts))
    if all(t.lower() in BINARY_WORDS for t in distinct) and {BINARY_WORDS[t.lower()] for t in distinct} == {0, 1}:
        return LABELS
    distinct = list({t.lower(): t for t in reversed(distinct)}.values())  # one spelling per name, ignoring case
    numbers = numeric_values(distinct)
    if numbers is not None:
        return tuple(distinct[i] for i in np.argsort(numbers, kind="stable"))
    return tuple(sorted(distinct, key=lambda t: (t.lower(), t)))


def column_classes(
    values: pd.Series, column: str, declared: Sequence[str] | None = None
) -> tuple[tuple[str, ...], np.ndarray]:
    """(label names, class index per value) for a label column's non-missing values.

    With `declared` (`--labels`), every value must name one of them (for two labels, 0/1 and neg/pos also
    do); the first that does not is an error naming it and its data row (1-based: the row under the header
    of a CSV is row 1), taken from the series' 0-based index.
    """
    texts = [label_text(v) for v in values]
    if declared is None:
        labels = discovered_labels(texts)
        if len(labels) < 2:
            raise UserError(f"label column {column!r} holds one class only ({list(labels)}): nothing to learn")
        if len(labels) > MAX_DISCOVERED:
            raise UserError(
                f"label column {column!r} holds {len(labels)} distinct values (e.g. {list(labels[:3])}): "
                f"is it a label column? Pass --label-column, or --labels to confirm them"
            )
    else:
        labels = tuple(declared)
        check_labels(labels)
    index = np.empty(len(texts), dtype=np.int64)
    for i, (row, text) in enumerate(zip(values.index, texts, strict=True)):
        found = class_index(text, labels)
        if found is None:
            raise UserError(
                f"label column {column!r}, row {_row_number(row)}: {text!r} is not one of the labels {list(labels)}"
                + (" given by --labels" if declared is not None else "")
            )
        index[i] = found
    return labels, index


def _row_number(row: object) -> str:
    return str(row + 1) if isinstance(row, (int, np.integer)) else repr(row)


def probability_columns(labels: Sequence[str]) -> tuple[str, ...]:
    """One CSV-safe column name per class (p_<label>): lower-case letters, digits and _, each name once."""
    names: list[str] = []
    for label in labels:
        base = "p_" + (_UNSAFE.sub("_", label).strip("_").lower() or "class")
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return tuple(names)
