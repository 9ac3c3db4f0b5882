"""The file formats score-csv reads and writes, told from the extension (no heavy imports: --help uses them)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ..errors import UserError

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
OUTPUT_FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")


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
