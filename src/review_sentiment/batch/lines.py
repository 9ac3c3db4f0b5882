"""Text lines from a byte stream: any newline convention, decode errors with their byte offset."""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import UserError


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


class CountedLines:
    """Lines handed to csv.reader, noting whether it asked for more after the last one."""

    def __init__(self, lines: Iterable[str]) -> None:
        self._lines = iter(lines)
        self.exhausted = False
        self.last = ""

    def __iter__(self) -> CountedLines:
        return self

    def __next__(self) -> str:
        try:
            self.last = next(self._lines)
            return self.last
        except StopIteration:
            self.exhausted = True
            raise
