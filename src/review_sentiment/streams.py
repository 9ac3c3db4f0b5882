"""Streaming table readers and writers for the batch scorer: bounded memory, whatever the file size."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Literal

import pandas as pd

from .errors import UserError

BadLines = Literal["error", "skip", "report"]
FORMATS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl"}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def format_of(name: str, given: str | None = None) -> str:
    if given:
        return given
    suffix = Path(name).suffix.lower()
    if suffix not in FORMATS:
        raise UserError(f"cannot tell the format of {name!r} from its extension; use .csv, .tsv, .parquet or .jsonl")
    return FORMATS[suffix]


@dataclass
class BadLine:
    line: int
    reason: str
    fields: list[str] = field(default_factory=list)


class DecodedLines:
    """Text lines from a byte stream, decoded incrementally so a bad byte is reported by its offset."""

    def __init__(self, stream: BinaryIO, encoding: str, block: int = 1 << 20) -> None:
        try:
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        except LookupError as error:
            raise UserError(f"unknown encoding {encoding!r}") from error
        self.encoding = encoding
        self.stream, self.block = stream, block
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        pending = ""
        while True:
            data = self.stream.read(self.block)
            try:
                text = self._decoder.decode(data, final=not data)
            except UnicodeDecodeError as error:
                offset = self.bytes_read + error.start
                raise UserError(
                    f"input is not valid {self.encoding} at byte offset {offset}; "
                    "pass its encoding with --encoding (for example latin-1 or cp1252)"
                ) from error
            self.bytes_read += len(data)
            pending += text
            lines = pending.split("\n")
            pending = lines.pop()
            for line in lines:
                yield line + "\n"
            if not data:
                if pending:
                    yield pending
                return


class TableReader:
    """Yields DataFrames of at most `chunk_rows` rows; `bad_lines` collects malformed records."""

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
        self.bad_lines: list[BadLine] = []
        self.columns: list[str] = []
        self._lines: DecodedLines | None = None
        if source != "-" and not Path(source).is_file():
            raise UserError(f"input file not found: {source}")
        self.total_bytes = Path(source).stat().st_size if source != "-" else None

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read if self._lines else 0

    def _open(self) -> BinaryIO:
        return self.stdin if self.source == "-" else open(self.source, "rb")

    def __iter__(self) -> Iterator[pd.DataFrame]:
        if self.fmt == "parquet":
            yield from self._parquet()
            return
        handle = self._open()
        try:
            self._lines = DecodedLines(handle, self.encoding)
            yield from (self._jsonl() if self.fmt == "jsonl" else self._delimited())
        finally:
            if handle is not self.stdin:
                handle.close()

    def _parquet(self) -> Iterator[pd.DataFrame]:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(self.source if self.source != "-" else io.BytesIO(self.stdin.read()))
        except Exception as error:
            raise UserError(f"could not read {self.source} as Parquet: {error}") from error
        self.columns = parquet.schema_arrow.names
        self.total_rows = parquet.metadata.num_rows
        for batch in parquet.iter_batches(batch_size=self.chunk_rows):
            yield batch.to_pandas()

    def _bad(self, line: int, reason: str, fields: list[str]) -> BadLine | None:
        if self.on_bad_lines == "error":
            raise UserError(f"malformed input at line {line}: {reason} (use --on-bad-lines skip or report)")
        bad = BadLine(line, reason, fields)
        self.bad_lines.append(bad)
        return bad if self.on_bad_lines == "report" else None

    def _delimited(self) -> Iterator[pd.DataFrame]:
        reader = csv.reader(self._lines, delimiter="\t" if self.fmt == "tsv" else ",", strict=True)
        try:
            header = next(reader)
        except StopIteration:
            raise UserError(f"{self.source} is empty: no header row") from None
        except csv.Error as error:
            raise UserError(f"could not parse the header of {self.source}: {error}") from error
        self.columns = [c.strip() for c in header]
        width, rows, flags = len(header), [], []
        while True:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as error:
                bad = self._bad(reader.line_num, str(error), [])
                if bad:
                    rows.append([""] * width)
                    flags.append(f"bad line {bad.line}: {bad.reason}")
                continue
            if not record:
                continue  # a blank line is no row
            if len(record) != width:
                bad = self._bad(reader.line_num, f"{len(record)} fields, expected {width}", record)
                if not bad:
                    continue
                record = (record + [""] * width)[:width]
                flags.append(f"bad line {bad.line}: {bad.reason}")
            else:
                flags.append("")
            rows.append(record)
            if len(rows) == self.chunk_rows:
                yield self._frame(rows, flags)
                rows, flags = [], []
        if rows:
            yield self._frame(rows, flags)

    def _frame(self, rows: list[list[str]], flags: list[str]) -> pd.DataFrame:
        frame = pd.DataFrame(rows, columns=self.columns, dtype=object)
        frame.attrs["bad_line"] = flags
        return frame

    def _jsonl(self) -> Iterator[pd.DataFrame]:
        records, flags = [], []
        for number, line in enumerate(self._lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError("not a JSON object")
                flags.append("")
            except ValueError as error:
                bad = self._bad(number, f"invalid JSON ({error})", [])
                if not bad:
                    continue
                record = {}
                flags.append(f"bad line {bad.line}: {bad.reason}")
            for key in record:
                if key not in self.columns:
                    self.columns.append(key)
            records.append(record)
            if len(records) == self.chunk_rows:
                yield self._json_frame(records, flags)
                records, flags = [], []
        if records:
            yield self._json_frame(records, flags)

    def _json_frame(self, records: list[dict], flags: list[str]) -> pd.DataFrame:
        frame = pd.DataFrame.from_records(records, columns=self.columns)
        frame.attrs["bad_line"] = flags
        return frame


def escape_formula(value: object) -> object:
    """Defuse spreadsheet formulas (CSV injection, OWASP): prefix a quote; plain numbers stay."""
    if isinstance(value, str) and value.startswith(FORMULA_START) and not _NUMBER.match(value):
        return "'" + value
    return value
