"""Telling an input's text encoding from a leading sample: byte order marks, then UTF-8, then charset-normalizer.

Only the first `SAMPLE_BYTES` are looked at, so a 10 GB file is not read twice; what the sample cannot
show (a file ASCII for its first megabyte, cp1252 after it) is handled while reading (`Detected.fallback`).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from ..errors import UserError
from .lines import UndecodableInput

if TYPE_CHECKING:
    from charset_normalizer import CharsetMatch

AUTO = "auto"
SAMPLE_BYTES = 1 << 20
# The common encoding of Western text (most IMDB reviews not in UTF-8), which a short sample cannot tell
# from cp1250, iso8859-10 or the Mac code pages: it wins over every other Latin reading.
WESTERN = "cp1252"
# When a reading in another script beats cp1252 (charset-normalizer's chaos 0-1+, coherence 0-1): measured
# on short reviews, real Cyrillic/Greek/Arabic text scores chaos 0, coherence 0.2+, and cp1252 chaos 1+;
# random Latin-1 letters read in another script score coherence 0, or chaos near cp1252's.
_CONFIDENT_CHAOS, _CONFIDENT_COHERENCE, _CHAOS_GAP, _MOJIBAKE_GAP, _MOJIBAKE_MIN_BYTES = 0.05, 0.2, 0.3, 1.0, 24
# Blocks of no script (punctuation, accents, symbols): they do not make a reading non-Latin.
_SCRIPTLESS = frozenset(
    {
        "Control character",
        "General Punctuation",
        "Combining Diacritical Marks",
        "Spacing Modifier Letters",
        "Currency Symbols",
        "Letterlike Symbols",
        "IPA Extensions",
    }
)
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


def _utf8_whole(sample: bytes, complete: bool) -> int | None:
    """How many bytes of `sample` are whole UTF-8 characters; None if it is not UTF-8.

    Incremental: a character cut by the end of the sample is not an error unless the file ends there.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        decoder.decode(sample, final=complete)
    except UnicodeDecodeError:
        return None
    return len(sample) - len(decoder.getstate()[0])


def detect_encoding(sample: bytes, complete: bool) -> Detected:
    """The encoding of a file that starts with `sample` (`complete`: the sample is the whole file).

    A BOM decides (UTF-8, UTF-16, UTF-32); else valid UTF-8 without NUL bytes is UTF-8; else cp1252 where
    the sample reads cleanly in it, unless charset-normalizer is confident of a non-Latin script; else
    charset-normalizer's most plausible candidate.
    """
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return Detected(name)
    whole = None if b"\x00" in sample else _utf8_whole(sample, complete)  # NULs: UTF-16 without a BOM
    if whole is not None:
        # ASCII but for a cut character at the very end (perhaps a cp1252 é): the rest may be cp1252 too.
        return Detected("utf-8", None if complete or not sample[:whole].isascii() else WESTERN)
    from charset_normalizer import from_bytes  # imported only for files that are not UTF-8

    best = from_bytes(sample).best()
    if b"\x00" not in sample and _reads_as_western(sample, best):
        return Detected(WESTERN)
    if best is None:
        raise UndecodableInput(
            "could not tell the text encoding of the input: pass it with --encoding (such as cp1252)"
        )
    return Detected(best.encoding)


def _reads_as_western(sample: bytes, best: CharsetMatch | None) -> bool:
    """Whether to read `sample` as cp1252 rather than charset-normalizer's `best` candidate.

    charset-normalizer ranks the single-byte Latin code pages on a few accents and often picks a rare one
    (French cp1252 read as iso8859-10: "trčs", "oų"); every Latin reading is as plausible to it, and cp1252
    is by far the most common. Only a reading in another script that charset-normalizer is confident of
    (little chaos, a recognised language, and cp1252 clearly worse) wins over it: Cyrillic, Greek, Arabic.
    """
    try:
        text = sample.decode(WESTERN)
    except UnicodeDecodeError:
        return False  # bytes cp1252 leaves undefined: not cp1252
    if best is None or all(_is_latin(block) for block in best.alphabets):
        return True
    from charset_normalizer.md import mess_ratio

    gap = mess_ratio(text, 1.0) - best.chaos
    # charset-normalizer scores CJK text low on coherence even when it is sure of it (GBK 0.14, EUC-KR 0):
    # a cp1252 reading that is far messier (mojibake) settles it there.
    # (on enough non-ASCII bytes: one "¡" alone reads as anything).
    mojibake = gap >= _MOJIBAKE_GAP and sum(byte > 127 for byte in sample) >= _MOJIBAKE_MIN_BYTES
    sure = best.coherence >= _CONFIDENT_COHERENCE or mojibake
    return not (best.chaos <= _CONFIDENT_CHAOS and sure and gap >= _CHAOS_GAP)


def _is_latin(block: str) -> bool:
    # Unicode block names as charset-normalizer reports them: "Latin-1 Supplement", "General Punctuation".
    return "Latin" in block or block in _SCRIPTLESS


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
