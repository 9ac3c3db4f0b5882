"""Text lines from a byte stream: any newline convention, decode errors with their byte offset."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import UserError

log = logging.getLogger(__name__)


class UndecodableInput(UserError):
    """Bytes not valid in the input's `encoding` at `offset`, on `line` (all None: no encoding could be told).

    `utf8_elsewhere`: the input is UTF-8 with accents read fine before the bad byte, so another encoding
    would misread those. The app words its own message from these: the command line's advice (--encoding)
    is not for a visitor.
    """

    def __init__(
        self,
        message: str,
        encoding: str | None = None,
        offset: int | None = None,
        line: int | None = None,
        utf8_elsewhere: bool = False,
    ) -> None:
        super().__init__(message)
        self.encoding, self.offset, self.line, self.utf8_elsewhere = encoding, offset, line, utf8_elsewhere


@dataclass
class BadLine:
    line: int
    reason: str


class DecodedLines:
    """Text lines from a byte stream, decoded incrementally so a bad byte is reported by its offset.

    `universal`: lines end at \\r\\n, \\r or \\n, ends kept (what csv wants, as from open(newline=""));
    otherwise at \\n only (JSON Lines).
    """

    def __init__(
        self,
        stream: BinaryIO,
        encoding: str,
        universal: bool = True,
        block: int = 1 << 20,
        fallback: str | None = None,
        detected: bool = False,
    ) -> None:
        try:
            self._decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
        except LookupError as error:
            raise UserError(f"unknown encoding {encoding!r}") from error
        self.encoding, self.detected = encoding, detected
        # `fallback`: read on in it at the first undecodable byte, if every byte before that was ASCII.
        self.fallback, self.switched_at = fallback, None
        self.stream, self.block = stream, block
        self.universal = universal
        self._end = re.compile(r"\r\n|\r|\n" if universal else r"\n")
        self.bytes_read = 0
        # For messages: lines decoded so far, and whether any was beyond ASCII.
        self.lines_before, self.non_ascii = 0, False

    def describe(self) -> str:
        """The encoding as logs and summaries name it: "cp1252 (detected)", "latin-1"."""
        if self.switched_at is not None:
            return f"{self.encoding} (detected at byte {self.switched_at}; ASCII before it)"
        return f"{self.encoding} (detected)" if self.detected else self.encoding

    def _decode(self, data: bytes) -> str:
        # The decoder may hold the start of a character from the last block: error positions count from it.
        held = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final=not data)
        except UnicodeDecodeError as error:
            buffer, base = held + data, self.bytes_read - len(held)
            if self.fallback and buffer[: error.start].isascii():
                return self._switch(buffer, base, base + error.start, final=not data)
            raise self._undecodable(error, buffer, base) from error
        self._count_lines(text)
        if not text.isascii():
            # Beyond ASCII and valid (bytes held for the next block do not count: they may be a cp1252 é):
            # this is the file's encoding, no switching now.
            self.fallback, self.non_ascii = None, True
        return text

    def _line_breaks(self, text: str) -> int:
        return text.count("\n") + (text.count("\r") - text.count("\r\n") if self.universal else 0)

    def _count_lines(self, text: str) -> None:
        # Lines before the current block, for messages; a \r\n cut by a block edge may count twice.
        self.lines_before += self._line_breaks(text)

    def _undecodable(self, error: UnicodeDecodeError, buffer: bytes, base: int) -> UndecodableInput:
        offset = base + error.start
        good = buffer[: error.start].decode(self.encoding, errors="replace")
        line = self.lines_before + 1 + self._line_breaks(good)
        how = " (detected from the start of the file)" if self.detected else ""
        where = f"line {line} (byte offset {offset})"
        utf8 = self.non_ascii and codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")
        if utf8:
            message = (
                f"input is {self.encoding}{how} but has a byte that is not valid {self.encoding} at {where}: "
                "fix or remove that byte (reading it with --encoding cp1252 or latin-1 would misread the "
                "accented characters elsewhere in it)"
            )
        else:
            hint = "for example latin-1 or cp1252"
            if offset < 2 and buffer[:2] in (b"\xff\xfe", b"\xfe\xff"):
                hint = "it starts like UTF-16: --encoding utf-16"
            message = f"input is not valid {self.encoding}{how} at {where}; pass its encoding with --encoding ({hint})"
        return UndecodableInput(message, self.encoding, offset, line, utf8)

    def _switch(self, buffer: bytes, base: int, offset: int, final: bool) -> str:
        # Every byte before `offset` was ASCII (else `fallback` is None), and ASCII reads the same in the
        # fallback: nothing decoded so far changes, so reading on in it loses or alters nothing. `buffer`
        # holds this block and the bytes the old decoder held back from the last one (from `base`).
        log.warning(
            "byte %d is not %s, and all before it was ASCII: reading on as %s", offset, self.encoding, self.fallback
        )
        self.encoding, self.fallback, self.switched_at = self.fallback, None, offset
        self._decoder = codecs.getincrementaldecoder(self.encoding)(errors="strict")
        try:
            text = self._decoder.decode(buffer, final=final)
        except UnicodeDecodeError as error:
            raise self._undecodable(error, buffer, base) from error
        self._count_lines(text)
        return text

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
