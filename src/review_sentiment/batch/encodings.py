"""Telling an input's text encoding from a leading sample: byte order marks, then UTF-8, then charset-normalizer.

Only the first `SAMPLE_BYTES` are looked at, so a 10 GB file is not read twice; what the sample cannot
show (a file ASCII for its first megabyte, cp1252 after it) is handled while reading (`Detected.fallback`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import UserError
from .lines import UndecodableInput

AUTO = "auto"
SAMPLE_BYTES = 1 << 20
# The common encoding of Western text (most IMDB reviews not in UTF-8), which a short sample cannot tell
# from cp1250 or the Mac code pages: it wins among candidates charset-normalizer finds equally plausible.
WESTERN = "cp1252"
# Longest first: a UTF-32-LE BOM starts with the UTF-16-LE one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class Detected:
    encoding: str
    # Where the sample was plain ASCII, bytes after it may still be another encoding: read on in this one
    # at the first byte that is not UTF-8 (ASCII reads the same in both, so nothing read before changes).
    fallback: str | None = None


def check_encoding(name: str) -> None:
    """Fail in one line on an encoding Python does not know ("auto" is ours)."""
    if name == AUTO:
        return
    try:
        codecs.lookup(name)
    except LookupError:
        raise UserError(f"unknown encoding {name!r} (use auto, or a Python codec name such as cp1252)") from None


def _is_utf8(sample: bytes, complete: bool) -> bool:
    # Incremental: a character cut by the end of the sample is not an error unless the file ends there.
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(sample: bytes, complete: bool) -> Detected:
    """The encoding of a file that starts with `sample` (`complete`: the sample is the whole file).

    A BOM decides (UTF-8, UTF-16, UTF-32); else valid UTF-8 without NUL bytes is UTF-8; else
    charset-normalizer's most plausible candidates, cp1252 first among equals.
    """
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return Detected(name)
    if b"\x00" not in sample and _is_utf8(sample, complete):  # NULs: UTF-16 without a BOM, not UTF-8 text
        return Detected("utf-8", None if complete or not sample.isascii() else WESTERN)
    from charset_normalizer import from_bytes  # imported only for files that are not UTF-8

    matches = from_bytes(sample)
    best = matches.best()
    if best is None:
        raise UndecodableInput(
            "could not tell the text encoding of the input: pass it with --encoding (such as cp1252)"
        )
    tied = [m for m in matches if m.chaos <= best.chaos]
    if any(WESTERN in m.could_be_from_charset for m in tied):
        return Detected(WESTERN)
    return Detected(best.encoding)


class Replay:
    """A byte stream that first gives back the sample already read from it, then the rest."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int = -1) -> bytes:
        if not self._head:
            return self._rest.read(size)
        if size < 0:
            data, self._head = self._head + self._rest.read(), b""
            return data
        data, self._head = self._head[:size], self._head[size:]
        return data
