"""Streaming table readers and writers for the batch scorer: bounded memory, whatever the file size.

The promise they keep: what pandas or pyarrow reads as a table, we read as the same table (rows,
order, columns), in chunks; and every chunk of one run is written with one schema, so the parts of a
run join into one valid file.
"""

from __future__ import annotations

import codecs
import csv
import json
import math
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import pandas as pd
import pyarrow as pa

from .errors import UserError
from .text import clean_text

BadLines = Literal["error", "skip", "report"]
Format = Literal["csv", "tsv", "parquet", "jsonl", "json"]
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
}
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Python's csv module stops at 128 KiB per field by default; pandas has no limit, so neither do we.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def format_of(name: str, given: str | None = None) -> str:
    if given:
        return given
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(
            f"cannot tell the format of {name!r} from its extension; use .csv, .tsv, .parquet, .jsonl or .json "
            "(or --input-format)"
        )
    return FORMATS[suffix]


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


def unique_names(names: list[str]) -> list[str]:
    """Duplicated names made unique exactly as pandas' CSV reader does: `text, text, text.1` →
    `text, text.2, text.1` (a new name never takes one the header already has)."""
    names, counts = list(names), {}
    for i, name in enumerate(names):
        new, count = name, counts.get(name, 0)
        while count > 0:
            counts[name] = count + 1
            new = f"{name}.{count}"
            count = count + 1 if new in names else counts.get(new, 0)
        names[i] = new
        counts[new] = count + 1
    return names


@dataclass
class BadLine:
    line: int
    reason: str


class DecodedLines:
    """Text lines from a byte stream, decoded incrementally so a bad byte is reported by its offset.

    `universal`: lines end at \\r\\n, \\r or \\n, ends kept (what csv wants, as from open(newline=""));
    otherwise at \\n only (JSON Lines).
    """

    def __init__(self, stream: BinaryIO, encoding: str, universal: bool = True, block: int = 1 << 20) -> None:
        try:
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        except LookupError as error:
            raise UserError(f"unknown encoding {encoding!r}") from error
        self.encoding = encoding
        self.stream, self.block = stream, block
        self._end = re.compile(r"\r\n|\r|\n" if universal else r"\n")
        self.bytes_read = 0

    def _decode(self, data: bytes) -> str:
        try:
            return self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            offset = self.bytes_read + error.start
            hint = "for example latin-1 or cp1252"
            if offset < 2 and data[:2] in (b"\xff\xfe", b"\xfe\xff"):
                hint = "it starts like UTF-16: --encoding utf-16"
            raise UserError(
                f"input is not valid {self.encoding} at byte offset {offset}; pass its encoding with --encoding ({hint})"
            ) from error

    def __iter__(self) -> Iterator[str]:
        pending, scanned = "", 0
        while True:
            data = self.stream.read(self.block)
            pending += self._decode(data)
            self.bytes_read += len(data)
            start = 0
            # Scan only what is new (a long field must not be re-scanned at every block); back up one
            # character so a \r\n split across two blocks is seen whole.
            for match in self._end.finditer(pending, max(scanned - 1, 0)):
                if match.group() == "\r" and match.end() == len(pending) and data:
                    break  # perhaps the first half of \r\n: wait for the next block
                yield pending[start : match.end()]
                start = match.end()
            pending = pending[start:]
            scanned = len(pending)
            if not data:
                if pending:
                    yield pending
                return

    def text(self) -> Iterator[str]:
        """The decoded text block by block (for whole-document formats)."""
        while True:
            data = self.stream.read(self.block)
            text = self._decode(data)
            self.bytes_read += len(data)
            if text:
                yield text
            if not data:
                return


class _CountedLines:
    """Lines handed to csv.reader, noting whether it asked for more after the last one."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.exhausted = False
        self.last = ""

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        try:
            self.last = next(self._lines)
            return self.last
        except StopIteration:
            self.exhausted = True
            raise


class TableReader:
    """Yields DataFrames of at most `chunk_rows` rows, in file order; `bad_count` counts malformed lines.

    After iteration starts, `columns` holds the input's column names and `schema` the Arrow schema
    every chunk is written with.
    """

    def __init__(
        self,
        source: str,
        fmt: str,
        chunk_rows: int,
        encoding: str = "utf-8-sig",
        on_bad_lines: BadLines = "error",
        stdin: BinaryIO | None = None,
    ) -> None:
        self.source, self.fmt, self.chunk_rows = source, fmt, chunk_rows
        self.encoding, self.on_bad_lines = encoding, on_bad_lines
        self.stdin = stdin
        self.bad_count = 0
        self.bad_lines: list[BadLine] = []  # the first few, for messages: memory must not grow with the file
        self.unit = "item" if fmt == "json" else "line"
        self.columns: list[str] = []
        self.schema: pa.Schema | None = None
        self._lines: DecodedLines | None = None
        self._spooled: Path | None = None
        if source != "-" and not Path(source).is_file():
            raise UserError(f"input file not found: {source}")
        self.total_bytes = Path(source).stat().st_size if source != "-" else None

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read if self._lines else 0

    def _open(self) -> BinaryIO:
        if self.source != "-":
            return open(self.source, "rb")
        if self.fmt in ("csv", "tsv"):
            return self.stdin
        # JSON is read twice (its keys first) and Parquet needs seeking: keep a copy of stdin.
        if self._spooled is None:
            with tempfile.NamedTemporaryFile(prefix="score-csv-stdin-", delete=False) as copy:
                shutil.copyfileobj(self.stdin, copy)
            self._spooled = Path(copy.name)
        return open(self._spooled, "rb")

    def __iter__(self) -> Iterator[pd.DataFrame]:
        try:
            if self.fmt == "parquet":
                yield from self._parquet()
            elif self.fmt in ("jsonl", "json"):
                yield from self._json()
            else:
                yield from self._delimited()
        finally:
            if self._spooled:
                self._spooled.unlink(missing_ok=True)

    # Parquet -----------------------------------------------------------------------------------
    def _parquet(self) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        with self._open() as handle:
            try:
                parquet = pq.ParquetFile(handle)
            except Exception as error:
                raise UserError(f"could not read {self.source} as Parquet: {error}") from error
            self.schema = parquet.schema_arrow
            self.columns = list(self.schema.names)
            for batch in parquet.iter_batches(batch_size=self.chunk_rows):
                # Arrow-backed columns keep their types chunk after chunk (an int column with a null
                # in one chunk must not turn into floats there).
                yield batch.to_pandas(types_mapper=pd.ArrowDtype)

    # Bad lines ---------------------------------------------------------------------------------
    def _bad(self, line: int, reason: str) -> BadLine | None:
        """`line`: the line number, or for a JSON array the item number."""
        if self.on_bad_lines == "error":
            where = f"{self.unit} {line}"
            raise UserError(f"malformed input at {where}: {reason} (use --on-bad-lines skip or report)")
        bad = BadLine(line, reason)
        self.bad_count += 1
        if len(self.bad_lines) < 10:
            self.bad_lines.append(bad)
        return bad if self.on_bad_lines == "report" else None

    def _frame(self, rows: list, flags: list[str]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=self.columns, dtype=object)
        frame.attrs["bad_line"] = flags
        return frame

    # CSV and TSV -------------------------------------------------------------------------------
    def _delimited(self) -> Iterator[pd.DataFrame]:
        handle = self._open()
        try:
            self._lines = DecodedLines(handle, self.encoding, universal=True)
            yield from self._records(_CountedLines(self._lines))
        finally:
            if handle is not self.stdin:
                handle.close()

    def _records(self, lines: _CountedLines) -> Iterator[pd.DataFrame]:
        # Not strict: like pandas, a stray quote inside a field is a character, not an error.
        reader = csv.reader(lines, delimiter="\t" if self.fmt == "tsv" else ",", strict=False)
        blank = " \r\n" if self.fmt == "tsv" else " \t\r\n"  # a tab is a field separator in TSV
        try:
            header = next(reader)
            while not header or (len(header) == 1 and not lines.last.strip(blank)):
                header = next(reader)  # pandas skips blank lines before the header too
        except StopIteration:
            raise UserError(f"{self.source} is empty: no header row") from None
        except csv.Error as error:
            raise UserError(f"could not parse the header of {self.source}: {error}") from error
        if lines.exhausted:
            raise UserError(f"the header of {self.source} opens a quote that is never closed")
        # An empty name is "Unnamed: i", as pandas names it.
        self.columns = unique_names([name or f"Unnamed: {i}" for i, name in enumerate(header)])
        self.schema = pa.schema([(name, pa.string()) for name in self.columns])
        width, rows, flags = len(header), [], []
        while True:
            first_line = reader.line_num + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                # The csv module's state after an error is unknown: going on could split a row in two.
                raise UserError(f"cannot parse line {reader.line_num}: {error}") from error
            if not record or (len(record) == 1 and reader.line_num == first_line and not lines.last.strip(blank)):
                continue  # a blank line, or one of spaces only, is no row (as in pandas)
            flag = ""
            if lines.exhausted:
                # csv.reader asked for a line after the last: a quoted field never closed.
                reason = (
                    f"a quoted field opened on line {first_line} is never closed (the rest of the file is one field)"
                )
                bad = self._bad(first_line, reason)
                if not bad:
                    continue
                record, flag = [""] * width, f"bad line {bad.line}: {reason}"
            elif len(record) > width:
                bad = self._bad(first_line, f"{len(record)} fields, expected {width}")
                if not bad:
                    continue
                record, flag = record[:width], f"bad line {bad.line}: {bad.reason}"
            elif len(record) < width:
                record = record + [""] * (width - len(record))  # pandas fills a short row with empty cells
            rows.append(record)
            flags.append(flag)
            if len(rows) == self.chunk_rows:
                yield self._frame(rows, flags)
                rows, flags = [], []
        if rows:
            yield self._frame(rows, flags)

    # JSON Lines and JSON arrays ----------------------------------------------------------------
    def _json_records(self) -> Iterator[tuple[int, dict | None, str]]:
        """(line or item number, record or None, reason) for each record of the file."""
        handle = self._open()
        try:
            self._lines = DecodedLines(handle, self.encoding, universal=False)
            if self.fmt == "jsonl":
                yield from _json_lines(self._lines)
            else:
                yield from _json_array(self._lines, self.source)
        finally:
            handle.close()

    def _json(self) -> Iterator[pd.DataFrame]:
        # Keys may first appear on any line: read them all first, so every chunk has every column.
        kinds: dict[str, set[str]] = {}
        for _, record, _ in self._json_records():
            for key, value in (record or {}).items():
                kinds.setdefault(key, set()).add(_json_kind(value))
        self.columns = list(kinds)
        self.schema = pa.schema([(key, _arrow_type(kind)) for key, kind in kinds.items()])
        if not self.columns:
            self.columns, self.schema = ["text"], pa.schema([("text", pa.string())])
        records, flags = [], []
        for number, record, reason in self._json_records():
            flag = ""
            if record is None:
                bad = self._bad(number, reason)
                if not bad:
                    continue
                record, flag = {}, f"bad {self.unit} {bad.line}: {bad.reason}"
            records.append([record.get(c) for c in self.columns])
            flags.append(flag)
            if len(records) == self.chunk_rows:
                yield self._frame(records, flags)
                records, flags = [], []
        if records:
            yield self._frame(records, flags)


_SURROGATE = re.compile("[\ud800-\udfff]")


def _no_lone_surrogates(value: object) -> object:
    """A JSON escape can encode half a UTF-16 pair (`\\ud800`), which no UTF-8 text can hold: U+FFFD."""
    if isinstance(value, str):
        if not _SURROGATE.search(value):
            return value
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, dict):
        return {_no_lone_surrogates(k): _no_lone_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_no_lone_surrogates(v) for v in value]
    return value


def _json_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict | None, str]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, strict=False)  # raw control characters in strings, as pandas allows
        except ValueError as error:
            yield number, None, f"invalid JSON ({error})"
            continue
        if isinstance(record, dict):
            yield number, _no_lone_surrogates(record), ""
        else:
            yield number, None, f"a JSON {type(record).__name__}, not an object"


def _json_array(lines: DecodedLines, source: str) -> Iterator[tuple[int, dict | None, str]]:
    """Objects of a top-level JSON array, parsed one at a time (a large file is never held whole)."""
    decoder = json.JSONDecoder(strict=False)
    blocks = lines.text()
    buffer, pos, item, done = "", 0, 0, False

    def more() -> bool:
        nonlocal buffer, pos, done
        block = next(blocks, None)
        if block is None:
            done = True
            return False
        buffer, pos = buffer[pos:] + block, 0
        return True

    def skip_space() -> str:
        nonlocal pos
        while True:
            while pos < len(buffer) and buffer[pos].isspace():
                pos += 1
            if pos < len(buffer) or not more():
                return buffer[pos] if pos < len(buffer) else ""

    if skip_space() != "[":
        raise UserError(f"{source} is not a JSON array of objects; for one object per line use JSON Lines (.jsonl)")
    pos += 1
    if skip_space() == "]":
        return
    while True:
        skip_space()
        while True:
            try:
                value, end = decoder.raw_decode(buffer, pos)
            except json.JSONDecodeError as error:
                # An item cut by the end of the block reads as an error near its end (or as an
                # unterminated string): read on. An error inside the text is the file's own.
                cut = error.pos >= len(buffer) - 16 or error.msg.startswith("Unterminated string")
                if cut and not done and more():
                    continue
                raise UserError(f"{source}: invalid JSON in item {item + 1} ({error.msg})") from None
            if not done and len(buffer) - end < 64 and more():
                continue  # a number may go on in the next block: decide with text after it in hand
            break
        pos = end
        item += 1
        if isinstance(value, dict):
            yield item, _no_lone_surrogates(value), ""
        else:
            yield item, None, f"a JSON {type(value).__name__}, not an object"
        separator = skip_space()
        pos += 1
        if separator == "]":
            if skip_space():
                raise UserError(f"{source}: text after the end of the JSON array")
            return
        if separator != ",":
            raise UserError(f"{source}: expected ',' or ']' after item {item} of the JSON array")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "string"  # beyond int64: kept as its digits
    if isinstance(value, float):
        return "float"
    return "string"  # strings, and objects or arrays written as JSON text


def _arrow_type(kinds: set[str]) -> pa.DataType:
    kinds = kinds - {"null"}
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    return pa.string()


# Writing ----------------------------------------------------------------------------------------
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
