"""Label names and how a cell of a label column names one: written once, for training's data and for the
gold labels score-csv and evaluate compare against.

Two classes keep the names and words they always had (0/1, neg/pos, negative/positive, true/false mean
("negative", "positive")). Any other set of values becomes that many classes: numbers in numeric order
("1", "2", …, "10"; 3.0 and 03 are "3"), other text in alphabetical order, unless `--labels` fixes the
names and their order.

Imports neither pandas nor the text module: the text contract (TextSpec) checks its labels here.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from .errors import UserError

if TYPE_CHECKING:  # imported where used: the CLI builds its --help from modules that import this one
    import numpy as np
    import pandas as pd

LABELS: tuple[str, str] = ("negative", "positive")  # two classes, as every binary file names them

# Gold labels as people write them for two classes: (negative, positive) = (0, 1).
BINARY_WORDS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1, "false": 0, "true": 1}
MAX_DISCOVERED = 100  # more distinct values than this is a text or id column, not labels (unless --labels)
_UNSAFE = re.compile(r"\W+")


def label_text(value: object) -> str:
    """A cell as label text: stripped, and a number written one way (3.0, "3.0" and "03" are "3"; "1.50" is
    "1.5"), so that one class is never split by how a file writes it."""
    text = str(value).strip()
    number = as_number(text)
    if number is None:
        return text
    return str(int(number)) if number.is_integer() else repr(number)


def as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def numeric_values(labels: Sequence[str]) -> list[float] | None:
    """The labels as numbers when every one is a number (star ratings), else None."""
    values = [as_number(label) for label in labels]
    return None if any(v is None for v in values) else values


def parse_labels(text: str) -> tuple[str, ...]:
    """`--labels a,b,c`: the names in order; two or more, each once."""
    names = tuple(label_text(name) for name in text.split(","))
    check_labels(names, "--labels")
    return names


def label_problem(labels: Sequence[str]) -> str | None:
    """What is wrong with a list of label names (two or more, none empty, none twice ignoring case), or None."""
    if len(labels) < 2 or not all(isinstance(name, str) and name for name in labels):
        return f"labels must be two or more non-empty names, not {list(labels)}"
    folded = [name.lower() for name in labels]
    repeated = sorted({name for name in labels if folded.count(name.lower()) > 1})
    if repeated:
        return f"labels name {repeated} more than once (labels are matched ignoring case)"
    return None


def check_labels(labels: Sequence[str], where: str = "labels") -> None:
    if problem := label_problem(labels):
        raise UserError(f"{where}: {problem}")


def class_index(value: object, labels: Sequence[str]) -> int | None:
    """A gold cell as a class index: a label's name (any case). For the labels negative and positive (in
    either order) also 0/1, neg/pos and true/false by their meaning; for two other names that are not
    numbers (bad, good) also 0 and 1, as the first and the second label."""
    text = label_text(value).lower()
    folded = [name.lower() for name in labels]
    if text in folded:
        return folded.index(text)
    if len(labels) != 2 or text not in BINARY_WORDS:
        return None
    if sorted(folded) == list(LABELS):
        return folded.index(LABELS[BINARY_WORDS[text]])
    return BINARY_WORDS[text] if text in ("0", "1") and numeric_values(labels) is None else None


def discovered_labels(texts: Iterable[str]) -> tuple[str, ...]:
    """The label names a column's distinct values make, in their natural order (see the module)."""
    distinct = sorted(set(texts))
    if all(t.lower() in BINARY_WORDS for t in distinct) and {BINARY_WORDS[t.lower()] for t in distinct} == {0, 1}:
        return LABELS
    distinct = list({t.lower(): t for t in reversed(distinct)}.values())  # one spelling per name, ignoring case
    values = numeric_values(distinct)
    if values is not None:
        return tuple(name for _, name in sorted(zip(values, distinct, strict=True)))
    return tuple(sorted(distinct, key=lambda t: (t.lower(), t)))


def column_classes(
    values: pd.Series, column: str, declared: Sequence[str] | None = None, origin: str = "given by --labels"
) -> tuple[tuple[str, ...], np.ndarray]:
    """(label names, class index per value) for a label column's non-missing values.

    With `declared` (`--labels`, or the training run's for an eval file: `origin` says which), every value
    must name one of them (see `class_index`); the first that does not is an error naming it and its data
    row (1-based: the row under the header of a CSV is row 1), taken from the series' 0-based index.
    """
    import numpy as np

    texts = [label_text(v) for v in values]
    labels = _discovered(texts, column) if declared is None else tuple(declared)
    if declared is not None:
        check_labels(labels)
    index = np.empty(len(texts), dtype=np.int64)
    for i, (row, text) in enumerate(zip(values.index, texts, strict=True)):
        found = class_index(text, labels)
        if found is None:
            raise UserError(
                f"label column {column!r}, row {_row_number(row)}: {text!r} is not one of the labels "
                f"{list(labels)}" + (f" {origin}" if declared is not None else "")
            )
        index[i] = found
    return labels, index


def _discovered(texts: list[str], column: str) -> tuple[str, ...]:
    labels = discovered_labels(texts)
    if len(labels) < 2:
        raise UserError(f"label column {column!r} holds one class only ({list(labels)[:1]}): nothing to learn")
    if len(labels) > MAX_DISCOVERED or len(labels) > max(10, len(texts) / 2):
        raise UserError(
            f"label column {column!r} holds {len(labels)} distinct values in {len(texts)} rows (e.g. "
            f"{list(labels[:3])}): is it the label column? Name the right one with --label-column, or confirm "
            "these classes with --labels"
        )
    return labels


def _row_number(row: object) -> str:
    return str(row + 1) if isinstance(row, numbers.Integral) else repr(row)


def probability_columns(labels: Sequence[str]) -> tuple[str, ...]:
    """One CSV-safe column name per class (p_<label>): lower-case letters, digits and _, each name once;
    a negative number keeps its sign as `minus_` (-1 → p_minus_1, never p_1)."""
    names: list[str] = []
    for label in labels:
        text = "minus_" + label[1:] if as_number(label) is not None and label.startswith("-") else label
        base = "p_" + (_UNSAFE.sub("_", text).strip("_").lower() or "class")
        name, i = base, 1
        while name in names:
            i += 1
            name = f"{base}_{i}"
        names.append(name)
    return tuple(names)
