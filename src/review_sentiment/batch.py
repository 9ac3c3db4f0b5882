"""`score-csv`: score a file of reviews on ONNX Runtime, streaming, resumable, losing no row.

Each input row appears in the output exactly once, in input order, with every original column and
`label`, `score` (probability of positive), `confidence` and `status` ("ok", or why it was skipped).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .configargs import add_config_arguments, config_from_args
from .data import TEXT_COLUMNS, detect_column
from .errors import UserError
from .metrics import probabilities
from .runtime import Scorer
from .streams import BadLines, TableReader, escape_formula, format_of
from .text import clean_text

log = logging.getLogger(__name__)
RESULT_COLUMNS = ("label", "score", "confidence", "status")


@dataclass
class BatchConfig:
    input: str = field(metadata={"help": "CSV, TSV, Parquet or JSONL file; '-' reads CSV from stdin"})
    output: str | None = field(
        default=None,
        metadata={"help": "output .csv or .parquet; '-' for stdout (default: INPUT.scored.csv, or stdout for stdin)"},
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
    input_format: Literal["csv", "tsv", "parquet", "jsonl"] | None = field(
        default=None, metadata={"help": "format when the extension does not tell"}
    )
    encoding: str = field(
        default="utf-8-sig", metadata={"help": "input text encoding (UTF-8 with or without BOM by default)"}
    )
    on_bad_lines: BadLines = field(
        default="error",
        metadata={"help": "malformed lines: stop with their line number, skip them, or report them as rows"},
    )
    batch_size: int = field(default=32, metadata={"help": "reviews per ONNX Runtime call"})
    chunk_rows: int = field(
        default=2000,
        metadata={"help": "rows read, scored and written at a time (bounds memory and resume granularity)"},
    )
    threads: int | None = field(
        default=None, metadata={"help": "ONNX Runtime intra-op threads (default: physical cores)"}
    )
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run from its last finished chunk"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output file"})
    raw: bool = field(default=False, metadata={"help": "write cells as they are (no spreadsheet formula escaping)"})
    engine: Literal["local", "ray"] = field(
        default="local",
        metadata={"help": "ray: distributed with Ray Data over files, folders, globs or URIs (needs the [ray] extra)"},
    )

    def __post_init__(self) -> None:
        if self.output is None:
            self.output = "-" if self.input == "-" else str(_default_output(self.input))
        if self.batch_size < 1 or self.chunk_rows < 1:
            raise UserError("--batch-size and --chunk-rows must be positive")
        if self.resume and self.output == "-":
            raise UserError("--resume needs an output file, not stdout")


def _default_output(source: str) -> Path:
    path = Path(source)
    return path.with_name(path.name.split(".")[0] + ".scored.csv")


def result_names(columns: list[str]) -> dict[str, str]:
    """Our column names, suffixed with _pred where the input already has a column of that name."""
    return {name: name + "_pred" if name in columns else name for name in RESULT_COLUMNS}


def score_frame(scorer: Scorer, frame: pd.DataFrame, text_column: str, batch_size: int = 32) -> pd.DataFrame:
    """The frame with label/score/confidence/status added; bad rows get a status, never an exception."""
    names = result_names([str(c) for c in frame.columns])
    status = pd.Series(frame.attrs.get("bad_line") or [""] * len(frame), index=frame.index, dtype=object)
    values = frame[text_column]
    texts: list[str] = []
    rows: list[int] = []
    for i, (value, flag) in enumerate(zip(values, status, strict=True)):
        if flag:
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            status.iat[i] = "skipped: missing"
        elif not isinstance(value, str):
            status.iat[i] = f"skipped: not text ({type(value).__name__})"
        elif not clean_text(value):
            status.iat[i] = "skipped: empty"
        else:
            texts.append(value)
            rows.append(i)
            status.iat[i] = "ok"
    label = np.full(len(frame), None, dtype=object)
    score = np.full(len(frame), np.nan)
    confidence = np.full(len(frame), np.nan)
    if texts:
        probs = probabilities(np.stack(list(scorer.iter_logits(texts, batch_size))))
        label[rows] = [scorer.labels[i] for i in probs.argmax(axis=1)]
        score[rows] = probs[:, 1]
        confidence[rows] = probs.max(axis=1)
    out = frame.copy()
    out.attrs = {}
    out[names["label"]] = label
    out[names["score"]] = score.round(6)
    out[names["confidence"]] = confidence.round(6)
    out[names["status"]] = status.to_numpy()
    return out


def _write_csv_rows(frame: pd.DataFrame, handle, header: bool, raw: bool) -> None:
    writer = csv.writer(handle, lineterminator="\n")
    if header:
        writer.writerow(frame.columns)
    for record in frame.itertuples(index=False, name=None):
        cells = ["" if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in record]
        writer.writerow(cells if raw else [escape_formula(v) for v in cells])


def _as_text_or_null(value: object) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value if isinstance(value, str) else str(value)


@contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it only once the block finished writing.

    A kill mid-write leaves the previous file (or none), never a truncated one: what resume trusts.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def _write_part(frame: pd.DataFrame, path: Path, fmt: str, header: bool, raw: bool) -> None:
    """Write one finished chunk atomically, so resume can trust it."""
    with _atomic_target(path) as tmp:
        _write_frame(frame, tmp, fmt, header, raw)


def _write_frame(frame: pd.DataFrame, tmp: Path, fmt: str, header: bool, raw: bool) -> None:
    if fmt == "parquet":
        # Object columns may mix types (JSONL); Parquet needs one type per column, and every part the same.
        frame = frame.copy()
        for column in frame.select_dtypes(include="object").columns:
            frame[column] = frame[column].map(_as_text_or_null).astype("string")
        frame.to_parquet(tmp, index=False)
    else:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            _write_csv_rows(frame, handle, header, raw)


def _write_atomically(path: Path, text: str) -> None:
    with _atomic_target(path) as tmp:
        tmp.write_text(text)


def _fingerprint(cfg: BatchConfig) -> str:
    stat = Path(cfg.input).stat()
    options = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "overwrite", "threads", "provider")}
    return hashlib.sha256(
        json.dumps([str(Path(cfg.input).resolve()), stat.st_size, stat.st_mtime_ns, options], default=str).encode()
    ).hexdigest()


def _join_parts(parts: list[Path], destination: Path, fmt: str) -> None:
    with _atomic_target(destination) as tmp:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            schema = pq.read_schema(parts[0]) if parts else None
            with pq.ParquetWriter(tmp, schema) as writer:
                for part in parts:
                    writer.write_table(pq.read_table(part).cast(schema))
        else:
            with tmp.open("wb") as out:
                for part in parts:
                    with part.open("rb") as handle:
                        shutil.copyfileobj(handle, out)


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    skipped: int = 0
    positive: int = 0
    bad_lines: int = 0
    seconds: float = 0.0
    provider: str = ""
    model: str = ""
    output: str = ""

    def add(self, frame: pd.DataFrame, names: dict[str, str]) -> dict:
        status = frame[names["status"]]
        counts = {
            "rows": len(frame),
            "scored": int((status == "ok").sum()),
            "positive": int((frame[names["label"]] == "positive").sum()),
        }
        self.record(counts)
        return counts

    def record(self, counts: dict) -> None:
        self.rows += counts["rows"]
        self.scored += counts["scored"]
        self.skipped += counts["rows"] - counts["scored"]
        self.positive += counts["positive"]

    def text(self) -> str:
        share = f"{self.positive / self.scored:.1%}" if self.scored else "n/a"
        rate = self.scored / self.seconds if self.seconds else 0.0
        return (
            f"rows {self.rows}, scored {self.scored}, skipped {self.skipped}, bad lines {self.bad_lines}; "
            f"positive {share}; {rate:.1f} reviews/s in {self.seconds:.1f} s on {self.provider}; "
            f"model {self.model}; output {self.output}"
        )


def score_file(cfg: BatchConfig, scorer: Scorer | None = None) -> Summary:
    """Score `cfg.input` chunk by chunk into `cfg.output`; finished chunks survive an interruption."""
    if cfg.engine == "ray":
        from .distributed import score_with_ray

        return score_with_ray(cfg)
    in_fmt = cfg.input_format or ("csv" if cfg.input == "-" else format_of(cfg.input))
    to_stdout = cfg.output == "-"
    out_fmt = "csv" if to_stdout else format_of(cfg.output)
    if out_fmt not in ("csv", "parquet"):
        raise UserError(f"output must be .csv or .parquet, not {cfg.output}")
    output = Path(cfg.output)
    parts_dir = output.with_name(output.name + ".parts")
    progress_file = parts_dir / "progress.json"
    reader = TableReader(cfg.input, in_fmt, cfg.chunk_rows, cfg.encoding, cfg.on_bad_lines, stdin=sys.stdin.buffer)
    progress: dict = {"fingerprint": None if cfg.input == "-" else _fingerprint(cfg), "parts": {}}
    if not to_stdout:
        if cfg.input != "-" and output.resolve() == Path(cfg.input).resolve():
            raise UserError("the output would replace the input; choose another --output")
        if cfg.resume:
            if not progress_file.exists():
                raise UserError(f"--resume: no interrupted run of {output} to continue (no {progress_file})")
            saved = json.loads(progress_file.read_text())
            if saved["fingerprint"] != progress["fingerprint"]:
                raise UserError(
                    "--resume: the input file or the options changed since the interrupted run; "
                    "start again with --overwrite"
                )
            progress = saved
        elif parts_dir.exists() and not cfg.overwrite:
            raise UserError(
                f"an interrupted run left {parts_dir}; continue it with --resume or start over with --overwrite"
            )
        elif output.exists() and not cfg.overwrite:
            raise UserError(f"output {output} already exists; pass --overwrite to replace it")
        if not cfg.resume:
            shutil.rmtree(parts_dir, ignore_errors=True)
        parts_dir.mkdir(parents=True, exist_ok=True)
        _write_atomically(progress_file, json.dumps(progress))
    try:
        return _score_chunks(cfg, scorer, reader, progress, parts_dir, out_fmt, to_stdout)
    except UserError:
        # Nothing here is resumable with the same options (bad bytes, bad lines, bad column): start clean.
        shutil.rmtree(parts_dir, ignore_errors=True)
        raise


def _score_chunks(
    cfg: BatchConfig,
    scorer: Scorer | None,
    reader: TableReader,
    progress: dict,
    parts_dir: Path,
    out_fmt: str,
    to_stdout: bool,
) -> Summary:
    progress_file = parts_dir / "progress.json"
    output = Path(cfg.output)
    scorer = scorer or Scorer.load(cfg.model, cfg.provider, cfg.threads)
    summary = Summary(provider=scorer.provider, model=str(scorer.folder), output=cfg.output)
    bar = tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc="scoring", disable=not sys.stderr.isatty())
    started = time.monotonic()
    parts: list[Path] = []
    text_column = None
    for index, frame in enumerate(reader):
        text_column = text_column or detect_column(frame, TEXT_COLUMNS, "text", cfg.text_column)
        part = parts_dir / f"part-{index:06d}.{out_fmt}"
        if not to_stdout and str(index) in progress["parts"] and part.exists():
            summary.record(progress["parts"][str(index)])
        else:
            scored = score_frame(scorer, frame, text_column, cfg.batch_size)
            counts = summary.add(scored, result_names([str(c) for c in frame.columns]))
            if to_stdout:
                _write_csv_rows(scored, sys.stdout, header=index == 0, raw=cfg.raw)
                sys.stdout.flush()
            else:
                _write_part(scored, part, out_fmt, header=index == 0, raw=cfg.raw)
                progress["parts"][str(index)] = counts
                _write_atomically(progress_file, json.dumps(progress))
        parts.append(part)
        bar.update(reader.bytes_read - bar.n) if reader.total_bytes else bar.update(len(frame))
        bar.set_postfix(rows=summary.rows, rev_s=f"{summary.scored / max(time.monotonic() - started, 1e-9):.1f}")
    bar.close()
    if not parts:
        empty = score_frame(
            scorer,
            pd.DataFrame(columns=reader.columns or [text_column or "text"], dtype=object),
            cfg.text_column or (reader.columns or ["text"])[0],
        )
        target = parts_dir / f"part-000000.{out_fmt}"
        if to_stdout:
            _write_csv_rows(empty, sys.stdout, header=True, raw=cfg.raw)
        else:
            _write_part(empty, target, out_fmt, header=True, raw=cfg.raw)
            parts = [target]
    if not to_stdout:
        _join_parts(parts, output, out_fmt)
        shutil.rmtree(parts_dir)
    summary.bad_lines = len(reader.bad_lines)
    summary.seconds = time.monotonic() - started
    if reader.bad_lines:
        lines = ", ".join(str(b.line) for b in reader.bad_lines[:10])
        verb = "skipped" if cfg.on_bad_lines == "skip" else "kept as rows with a status"
        log.warning(
            "%d malformed lines %s (lines %s%s)",
            len(reader.bad_lines),
            verb,
            lines,
            ", …" if len(reader.bad_lines) > 10 else "",
        )
    return summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score-csv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, BatchConfig, positional=("input",))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None) -> int:
    from .cli import run_guarded, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)

    def run() -> None:
        cfg = config_from_args(BatchConfig, args)
        try:
            summary = score_file(cfg)
        except KeyboardInterrupt:
            raise UserError("interrupted: finished chunks are kept; continue with --resume") from None
        print(summary.text(), file=sys.stderr)

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
