"""JSON Lines and JSON arrays read row by row, and the Arrow type of each key's values."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator

import pyarrow as pa

from ..errors import UserError
from .lines import DecodedLines

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


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, dict | None, str]]:
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


def json_array(lines: DecodedLines, source: str) -> Iterator[tuple[int, dict | None, str]]:
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


def json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -(2**63) <= value < 2**63 else "string"  # beyond int64: kept as its digits
    if isinstance(value, float):
        return "float"
    return "string"  # strings, and objects or arrays written as JSON text


def arrow_type(kinds: set[str]) -> pa.DataType:
    kinds = kinds - {"null"}
    if kinds == {"int"}:
        return pa.int64()
    if kinds and kinds <= {"int", "float"}:
        return pa.float64()
    if kinds == {"bool"}:
        return pa.bool_()
    return pa.string()


# Writing ----------------------------------------------------------------------------------------
