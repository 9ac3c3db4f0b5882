"""What a score-csv run is asked to do: one typed config, validated, from which the CLI options are made."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import UserError
from .encodings import check_encoding
from .formats import FORMATS, BadLines


@dataclass
class BatchConfig:
    input: str = field(metadata={"help": "CSV, TSV, Parquet, JSON Lines or JSON-array file; '-' reads CSV from stdin"})
    output: str | None = field(
        default=None,
        metadata={
            "help": "output file (.csv, .tsv, .parquet, .jsonl or .json); '-' for stdout "
            "(default: INPUT with .scored before its extension, or stdout for stdin; with --engine ray a folder "
            "of Parquet shards beside the input, or this file)"
        },
    )
    model: str | None = field(
        default=None, metadata={"help": "exported model folder or Hub id (default: the bundled model)"}
    )
    provider: Literal["auto", "cuda", "tensorrt", "cpu"] = field(
        default="auto",
        metadata={"help": "ONNX Runtime provider; cuda/tensorrt fail if they cannot run, auto falls back to CPU"},
    )
    text_column: str | None = field(
        default=None, metadata={"help": "column holding the review (detected when omitted)"}
    )
    input_format: Literal["csv", "tsv", "parquet", "jsonl", "json"] | None = field(
        default=None, metadata={"help": "format when the extension does not tell"}
    )
    encoding: str = field(
        default="auto",
        metadata={
            "help": "input text encoding, such as cp1252 or utf-16; auto: told from a BOM, else UTF-8, else "
            "cp1252 when the first 1 MB reads cleanly as it, unless charset-normalizer is confident of another script; named in the log and the summary"
        },
    )
    on_bad_lines: BadLines = field(
        default="error",
        metadata={
            "help": "really malformed lines (too many fields, a quote never closed, invalid JSON): stop with "
            "their line number, skip them, or keep them as rows with a status"
        },
    )
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "reviews per ONNX Runtime call (default: on CPU, as many as fit 512 tokens, one long review alone; "
            "32 on a GPU). On CPU --threads calls run at once, so memory grows with both. Scores of fp32 and static "
            "int8 models agree to 1e-5 whatever the batch (dynamic int8 scales each call by its batch)"
        },
    )
    chunk_rows: int = field(
        default=2000,
        metadata={"help": "rows read, scored and written at a time (bounds memory and resume granularity)"},
    )
    threads: int | None = field(
        default=None,
        metadata={
            "help": "CPU threads (default: every CPU this process may use); on CPU that many calls run at once, "
            "each on one thread"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run from its last finished chunk"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})
    raw: bool = field(default=False, metadata={"help": "write cells as they are (no spreadsheet formula escaping)"})
    min_confidence: float | None = field(
        default=None,
        metadata={
            "help": "rows whose (calibrated) confidence is below this keep their label but get status 'uncertain' "
            "(default: none)"
        },
    )
    label_column: str | None = field(
        default=None,
        metadata={
            "help": "column of gold labels (the model's label names; for two labels also 0/1 or neg/pos): "
            "the summary reports accuracy"
        },
    )
    engine: Literal["local", "ray"] = field(
        default="local",
        metadata={
            "help": (
                "ray: distributed with Ray Data over files, folders, globs or URIs (the [ray] extra on every node). "
                "Joins the cluster in RAY_ADDRESS (RAY_AUTH_TOKEN if it asks for a token), else one started here "
                "with `ray start`, else starts one; one scoring actor per CPU of each node, the model sent to "
                "them by Ray; the input must be a URI or on storage every node mounts. Writes Parquet shards "
                "(part-00000.parquet, … in row order) beside the input, never inside it, or one file when --output "
                "names one; folder and glob inputs get a source_file column"
            )
        },
    )

    def __post_init__(self) -> None:
        if self.output is None and self.engine == "local":
            self.output = "-" if self.input == "-" else default_output(self.input, self.input_format)
        if self.min_confidence is not None and not 0 < self.min_confidence < 1:
            raise UserError("--min-confidence must be between 0 and 1 (a share, such as 0.8)")
        if any(n is not None and n < 1 for n in (self.batch_size, self.threads)) or self.chunk_rows < 1:
            raise UserError("--batch-size, --threads and --chunk-rows must be positive")
        check_encoding(self.encoding)
        if self.resume and "-" in (self.input, self.output):
            raise UserError("--resume needs an input file and an output file (stdin cannot be read again)")


def default_output(source: str, input_format: str | None = None) -> str:
    """`reviews.2024.csv` → `reviews.2024.scored.csv`: the whole stem, and the input's own format."""
    path = Path(source)
    if path.suffix.lower() in FORMATS:
        return str(path.with_name(f"{path.stem}.scored{path.suffix}"))
    return str(path.with_name(f"{path.name}.scored.{input_format or 'csv'}"))
