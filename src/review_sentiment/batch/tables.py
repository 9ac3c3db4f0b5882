"""Streaming table readers for the batch scorer: bounded memory, whatever the file size.

The promise they keep: what pandas or pyarrow reads as a table, we read as the same table (rows,
order, columns), in chunks; and every chunk of one run is written with one schema, so the parts of a
run join into one valid file.
"""

from __future__ import annotations

import csv
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa

from ..errors import UserError
from .encodings import AUTO, SAMPLE_BYTES, Detected, Replay, detect_encoding
from .formats import BadLines
from .json_rows import arrow_type, json_array, json_kind, json_lines
from .lines import BadLine, CountedLines, DecodedLines

# Python's csv module stops at 128 KiB per field by default; pandas has no limit, so neither do we.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


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
        encoding: str = AUTO,
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
        self._detected: Detected | None = None  # what "auto" found (once: JSON is read twice)
        self._spooled: Path | None = None
        if source != "-" and not Path(source).is_file():
            raise UserError(f"input file not found: {source}")
        self.total_bytes = Path(source).stat().st_size if source != "-" else None

    @property
    def bytes_read(self) -> int:
        return self._lines.bytes_read if self._lines else 0

    @property
    def encoding_used(self) -> str:
        """How the text was decoded ("cp1252 (detected)", "latin-1"), once reading started; "" for Parquet."""
        return self._lines.describe() if self._lines else ""

    def count_rows(self, limit: int | None = None) -> int:
        """The rows this reader yields (Parquet: from its metadata), counting no further than past `limit`.

        Read with a fresh reader: it counts by reading, so a cap is checked before any row is scored.
        """
        if self.fmt == "parquet":
            import pyarrow.parquet as pq

            with self._open() as handle:
                try:
                    return pq.ParquetFile(handle).metadata.num_rows
                except Exception as error:
                    raise UserError(f"could not read {self.source} as Parquet: {error}") from error
        rows = 0
        for frame in self:
            rows += len(frame)
            if limit is not None and rows > limit:
                break
        return rows

    def _decoded(self, handle: BinaryIO, universal: bool) -> DecodedLines:
        """Lines of `handle` in the given encoding, or, for "auto", in the one its first bytes show."""
        if self.encoding != AUTO:
            return DecodedLines(handle, self.encoding, universal)
        if self._detected is None:
            sample = handle.read(SAMPLE_BYTES)  # bounded: a huge file is not read twice
            self._detected = detect_encoding(sample, complete=len(sample) < SAMPLE_BYTES)
            handle = Replay(sample, handle)
        found = self._detected
        return DecodedLines(handle, found.encoding, universal, fallback=found.fallback, detected=True)

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
            self.schema = parquet.schema_arrow.remove_metadata()
            self.columns = list(self.schema.names)
            for batch in parquet.iter_batches(batch_size=self.chunk_rows):
                yield arrow_to_frame(batch)

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
            self._lines = self._decoded(handle, universal=True)
            yield from self._records(CountedLines(self._lines))
        finally:
            if handle is not self.stdin:
                handle.close()

    def _records(self, lines: CountedLines) -> Iterator[pd.DataFrame]:
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
            self._lines = self._decoded(handle, universal=False)
            if self.fmt == "jsonl":
                yield from json_lines(self._lines)
            else:
                yield from json_array(self._lines, self.source)
        finally:
            handle.close()

    def _json(self) -> Iterator[pd.DataFrame]:
        # Keys may first appear on any line: read them all first, so every chunk has every column.
        kinds: dict[str, set[str]] = {}
        for _, record, _ in self._json_records():
            for key, value in (record or {}).items():
                kinds.setdefault(key, set()).add(json_kind(value))
        self.columns = list(kinds)
        self.schema = pa.schema([(key, arrow_type(kind)) for key, kind in kinds.items()])
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


def arrow_to_frame(batch) -> pd.DataFrame:
    """An Arrow batch as the scorer's frame: every column of the file stays a column (an index pandas saved
    comes out as the column it is stored as, `__index_level_0__` or its name), and Arrow-backed columns keep
    their types chunk after chunk (an int column with a null in one chunk must not turn into floats there)."""
    return batch.replace_schema_metadata(None).to_pandas(types_mapper=pd.ArrowDtype)
