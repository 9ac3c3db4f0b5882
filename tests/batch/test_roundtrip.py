"""Properties of score-csv's input and output: every legal table round-trips, row for row.

Hypothesis generates tables (quotes, embedded CR/LF, BOM, long fields, unicode, empty and missing
cells, numbers, keys that appear late in JSON Lines, odd header names) in every supported format; the
output must hold exactly the input rows, in order, input cells unchanged, with the right statuses and
the scorer's own answer for each review. A bounded number of examples keeps the suite fast; run
`HYPOTHESIS_PROFILE=thorough pytest tests/test_roundtrip.py` for many more.
"""

from __future__ import annotations

import io
import json
import os

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from review_sentiment.batch.config import BatchConfig
from review_sentiment.batch.score_file import score_file
from review_sentiment.scorer import Scorer
from review_sentiment.text import clean_text

from ..conftest import NEGATIVE, POSITIVE

settings.register_profile(
    "default", max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
settings.register_profile("thorough", max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("random", max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Text that stresses CSV and JSON: delimiters, quotes, CR/LF, tabs, HTML, entities, any unicode but NUL.
_tricky = st.sampled_from([",", '"', "\n", "\r", "\r\n", "\t", "<br />", "&amp;", "'", "=", " ", *POSITIVE, *NEGATIVE])
_chars = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")
_piece = _tricky | st.text(_chars, max_size=8)
_text = st.lists(_piece, max_size=12).map("".join)
_long = st.builds(lambda s, n: (s or "x") * n, _text, st.integers(1, 40_000))  # up to ~1 MB
_cell = st.one_of(_text, _text, _long, st.just(""), st.from_regex(r"-?\d{1,6}(\.\d{1,3})?", fullmatch=True))
_names = st.sampled_from(["id", "stars", "label", "status", " Note ", "text.1", "Ünïcode", "a,b", 'q"uote', "x\ny"])


@st.composite
def tables(draw, min_rows: int = 0) -> tuple[list[str], list[list[str]]]:
    """A header with a 'review' column at a random place, and rows of string cells."""
    others = draw(st.lists(_names, max_size=3, unique=True))
    columns = list(others)
    columns.insert(draw(st.integers(0, len(others))), "review")
    rows = draw(st.lists(st.lists(_cell, min_size=len(columns), max_size=len(columns)), min_size=min_rows, max_size=9))
    return columns, rows


def expected_status(value) -> str:
    if value is None:
        return "skipped: missing"
    if not isinstance(value, str):
        return f"skipped: not text ({type(value).__name__})"
    if not clean_text(value):
        return "skipped: empty"
    return "ok" if any(ch.isalpha() for ch in clean_text(value)) else "skipped: no words"


def check_output(out: pd.DataFrame, columns: list[str], rows: list[list], scorer: Scorer) -> None:
    """Rows in = rows out, in order; input cells unchanged; statuses and scores right."""
    assert len(out) == len(rows)
    result = "label_pred" if "label" in columns else "label"
    status = "status_pred" if "status" in columns else "status"
    assert list(out.columns)[: len(columns)] == columns
    for i, row in enumerate(rows):
        for name, value in zip(columns, row, strict=True):
            got = out[name].iloc[i]
            assert (None if pd.isna(got) else got) == value, (i, name)
        text = row[columns.index("review")]
        assert out[status].iloc[i] == expected_status(text)
        if expected_status(text) == "ok":
            assert out[result].iloc[i] == scorer.predict(text).label


@pytest.fixture(scope="module")
def scorer(bag_of_words_model):
    return Scorer.load(bag_of_words_model)


def _quoted(cell: str, delimiter: str, quote_all: bool) -> str:
    # Minimal quoting as RFC 4180 has it (csv.writer leaves a lone \r bare when the terminator is \n).
    if quote_all or any(ch in cell for ch in (delimiter, '"', "\r", "\n")) or cell != cell.strip(" "):
        return '"' + cell.replace('"', '""') + '"'
    return cell


def _write_delimited(path, columns, rows, delimiter, terminator, bom, quote_all=False):
    lines = [delimiter.join(_quoted(c, delimiter, quote_all) for c in row) for row in [columns, *rows]]
    # One empty field alone on a line would be a blank line, which is no row: quote it.
    lines = [line or '""' for line in lines]
    path.write_bytes(("\ufeff" if bom else "").encode() + "".join(line + terminator for line in lines).encode())


@given(
    table=tables(),
    delimiter=st.sampled_from([",", "\t"]),
    terminator=st.sampled_from(["\n", "\r\n", "\r"]),
    bom=st.booleans(),
    quote_all=st.booleans(),
    chunk_rows=st.integers(1, 4),
)
def test_delimited_files_round_trip(scorer, tmp_path_factory, table, delimiter, terminator, bom, quote_all, chunk_rows):
    columns, rows = table
    folder = tmp_path_factory.mktemp("csv")
    suffix = ".csv" if delimiter == "," else ".tsv"
    source = folder / f"in{suffix}"
    _write_delimited(source, columns, rows, delimiter, terminator, bom, quote_all)
    score_file(BatchConfig(input=str(source), raw=True, chunk_rows=chunk_rows), scorer)
    output = folder / f"in.scored{suffix}"
    out = pd.read_csv(output, sep=delimiter, dtype=str, keep_default_na=False)
    check_output(out, columns, rows, scorer)


@given(
    table=tables(),
    late_keys=st.booleans(),
    chunk_rows=st.integers(1, 3),
    out_fmt=st.sampled_from(["csv", "parquet", "jsonl"]),
)
def test_json_lines_round_trip(scorer, tmp_path_factory, table, late_keys, chunk_rows, out_fmt):
    columns, rows = table
    folder = tmp_path_factory.mktemp("jsonl")
    records = []
    for i, row in enumerate(rows):
        record = dict(zip(columns, row, strict=True))
        if late_keys and i < len(rows) - 1:  # most keys appear only on the last line
            record = {"review": record["review"]}
        records.append(record)
    source = folder / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    output = folder / f"out.{out_fmt}"
    score_file(BatchConfig(input=str(source), output=str(output), raw=True, chunk_rows=chunk_rows), scorer)
    if out_fmt == "parquet":
        out = pd.read_parquet(output)
    elif out_fmt == "jsonl":
        out = pd.read_json(output, lines=True, dtype=False) if rows else pd.DataFrame(columns=columns)
    else:
        out = pd.read_csv(output, dtype=str, keep_default_na=False)
    if not rows:
        assert len(out) == 0
        return
    keys = list(dict.fromkeys(k for r in records for k in r))
    expected = [[r.get(k) for k in keys] for r in records]
    if out_fmt == "csv":  # CSV has no null: a missing key is an empty cell
        expected = [["" if v is None else v for v in row] for row in expected]
    check_output(out, keys, expected, scorer)


@given(table=tables(), nulls=st.booleans(), chunk_rows=st.integers(1, 3))
def test_parquet_round_trip_keeps_types(scorer, tmp_path_factory, table, nulls, chunk_rows):
    columns, rows = table
    folder = tmp_path_factory.mktemp("parquet")
    if nulls:  # a missing review, and an int column with a null in one chunk only
        rows = [*rows, [None] * len(columns)]
    numbers = [None if nulls and i == len(rows) - 1 else i for i in range(len(rows))]
    schema = pa.schema([(c, pa.string()) for c in columns] + [("n", pa.int64())])
    data = {c: [row[i] for row in rows] for i, c in enumerate(columns)} | {"n": numbers}
    source = folder / "in.parquet"
    pq.write_table(pa.table(data, schema=schema), source)
    score_file(BatchConfig(input=str(source), chunk_rows=chunk_rows), scorer)
    out = pq.read_table(folder / "in.scored.parquet")
    assert out.schema.field("n").type == pa.int64() and out.column("n").to_pylist() == numbers
    assert out.schema.field("review").type == pa.string()
    check_output(out.to_pandas(), columns, rows, scorer)


@pytest.mark.parametrize("index_name", [None, "row"])
def test_parquet_written_by_pandas_keeps_its_index_as_a_column(scorer, tmp_path, index_name):
    """A sampled frame saved with pandas' to_parquet stores its index as a column (`__index_level_0__`, or
    the index's name) that pandas' metadata turns back into an index: every row and that column come out."""
    frame = pd.DataFrame({"review": [f"{POSITIVE[0]} {i}" for i in range(30)] + [NEGATIVE[0]] * 10, "id": range(40)})
    frame = frame.sample(frac=1, random_state=3).rename_axis(index_name)
    frame.to_parquet(tmp_path / "sample.parquet")
    score_file(BatchConfig(input=str(tmp_path / "sample.parquet"), chunk_rows=7), scorer)
    out = pd.read_parquet(tmp_path / "sample.scored.parquet")
    stored = index_name or "__index_level_0__"
    assert list(out.columns[:3]) == ["review", "id", stored]
    assert out[stored].tolist() == frame.index.tolist() and out["id"].tolist() == frame["id"].tolist()
    assert out["label"].tolist() == [scorer.predict(text).label for text in frame["review"]]


class Interrupt(Exception):
    pass


class StopAfter:
    """A scorer that stops the run (like a kill) after scoring `chunks` chunks."""

    def __init__(self, scorer: Scorer, chunks: int) -> None:
        self.scorer, self.left = scorer, chunks
        self.provider, self.folder, self.labels = scorer.provider, scorer.folder, scorer.labels

    def logits(self, *args, **kwargs):
        if self.left == 0:
            raise Interrupt
        self.left -= 1
        return self.scorer.logits(*args, **kwargs)


@given(table=tables(min_rows=2), stop=st.integers(0, 5), fmt=st.sampled_from(["csv", "parquet", "jsonl", "json"]))
def test_interrupted_then_resumed_equals_uninterrupted(scorer, tmp_path_factory, table, stop, fmt):
    columns, rows = table
    at = columns.index("review")
    rows = [[f"great {cell}" if j == at else cell for j, cell in enumerate(row)] for row in rows]  # each chunk scores
    folder = tmp_path_factory.mktemp("resume")
    source = folder / "in.csv"
    _write_delimited(source, columns, rows, ",", "\n", False)
    reference, resumed = folder / f"reference.{fmt}", folder / f"resumed.{fmt}"
    score_file(BatchConfig(input=str(source), output=str(reference), chunk_rows=1), scorer)
    cfg = BatchConfig(input=str(source), output=str(resumed), chunk_rows=1)
    if stop < len(rows):
        with pytest.raises(Interrupt):
            score_file(cfg, StopAfter(scorer, stop))
        assert not resumed.exists()
        # Finished chunks are kept for --resume; a run that finished none leaves nothing behind.
        assert resumed.with_name(resumed.name + ".parts").exists() == (stop > 0)
        cfg.resume = stop > 0
    score_file(cfg, scorer)
    assert resumed.read_bytes() == reference.read_bytes()


@given(st.lists(st.sampled_from(["a", "a.1", "a.2", "b", "a.1.1", "text", "text.1"]), min_size=1, max_size=7))
def test_duplicate_header_names_are_renamed_exactly_as_pandas_does(names):
    from review_sentiment.batch.tables import unique_names

    header = ",".join(names) + "\n" + ",".join("1" * len(names)) + "\n"
    assert unique_names(names) == list(pd.read_csv(io.StringIO(header), dtype=str).columns)


@given(
    st.lists(
        st.one_of(
            st.dictionaries(st.sampled_from(["review", "n"]), _text | st.integers()),
            st.floats(allow_nan=False),
            st.integers(),
        ),
        max_size=6,
    ),
    st.integers(1, 9),
)
def test_json_arrays_parse_the_same_whatever_the_block_size(items, block):
    from review_sentiment.batch.json_rows import json_array
    from review_sentiment.batch.lines import DecodedLines

    data = json.dumps(items).encode()

    def parse(size):
        return list(json_array(DecodedLines(io.BytesIO(data), "utf-8", universal=False, block=size), "x"))

    parsed = parse(block)
    assert parsed == parse(1 << 20)
    assert [record for _, record, _ in parsed] == [i if isinstance(i, dict) else None for i in items]
