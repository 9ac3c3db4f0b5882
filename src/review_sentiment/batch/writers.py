"""Writing scored rows: CSV/TSV with our own quoting, JSON Lines, JSON arrays, Arrow tables; formula escaping."""

from __future__ import annotations

import json
import math
import re

import pandas as pd
import pyarrow as pa

from ..columns import is_missing

_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
TEXT_RESULTS = ("label", "status")  # every other column scoring adds is a probability (float64)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_formula(value: object) -> object:
    """Defuse spreadsheet formulas (CSV injection, OWASP): prefix a quote; plain numbers stay."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value


def as_text(value: object) -> str | None:
    """A cell as text for string columns: JSON for objects and arrays, None when missing."""
    if is_missing(value):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return _to_json(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_arrow(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """The frame as a table of exactly `schema`, whatever mix of values a chunk happens to hold."""
    arrays = []
    for name, column in zip(schema.names, frame.columns, strict=True):
        kind = schema.field(name).type
        values = frame[column]
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            arrays.append(pa.array([as_text(v) for v in values], type=kind))
        else:  # a float NaN of the input stays NaN; only None and NA are missing
            arrays.append(pa.array([None if v is None or v is pd.NA else v for v in values], type=kind))
    return pa.Table.from_arrays(arrays, schema=schema)


def _json_value(value: object) -> object:
    if is_missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, dict | list):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or infinity (pandas writes null too)
    if isinstance(value, str | int | float | bool | dict | list):
        return value
    return str(value)


def _to_json(value: object) -> str:
    """Strict JSON (no NaN/Infinity); dates, decimals and other values nested in lists or structs as text."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, default=str)


def write_rows(frame: pd.DataFrame, handle, fmt: str, first: bool, raw: bool) -> None:
    """Append one chunk in a text format; `first` writes the header (CSV, TSV) or opens the array (JSON)."""
    if fmt in ("csv", "tsv"):
        delimiter = "\t" if fmt == "tsv" else ","
        escape = (lambda v: v) if raw else escape_formula
        if first:
            handle.write(csv_line([escape(str(c)) for c in frame.columns], delimiter))
        for record in frame.itertuples(index=False, name=None):
            cells = [escape(as_text(v) or "") if not isinstance(v, float) else _float(v) for v in record]
            handle.write(csv_line(cells, delimiter))
        return
    names = [str(c) for c in frame.columns]
    for i, record in enumerate(frame.itertuples(index=False, name=None)):
        line = _to_json(dict(zip(names, map(_json_value, record), strict=True)))
        if fmt == "jsonl":
            handle.write(line + "\n")
        else:
            handle.write(("[\n" if first and i == 0 else ",\n") + line)


_QUOTE_IF = {",": re.compile(r'[,"\r\n]'), "\t": re.compile(r'[\t"\r\n]')}


def csv_line(cells: list[str], delimiter: str = ",") -> str:
    """One CSV/TSV record and its \\n. Quoted wherever a reader could misread a cell: the delimiter,
    a quote, and \\r or \\n anywhere (Python's csv.writer leaves a lone \\r bare, which splits the row)."""
    needs_quotes = _QUOTE_IF[delimiter].search
    line = delimiter.join('"' + c.replace('"', '""') + '"' if needs_quotes(c) else c for c in cells)
    return (line or '""') + "\n"  # a lone empty cell would read as a blank line, which is no row


def _float(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))  # numpy 2's repr of a float64 says np.float64(…)


def close_json_array(handle, wrote_rows: bool) -> None:
    handle.write("\n]\n" if wrote_rows else "[]\n")


def output_schema(input_schema: pa.Schema, names: dict[str, str]) -> pa.Schema:
    """The input's fields, then ours: `names` is `result_names(columns, labels)`, so it already holds the
    model's result columns in order (score for two labels, p_<label> for more) and the schema cannot
    disagree with the frames `score_frame` makes."""
    ours = [pa.field(new, pa.string() if key in TEXT_RESULTS else pa.float64()) for key, new in names.items()]
    return pa.schema(list(input_schema) + ours)


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in schema.names})
