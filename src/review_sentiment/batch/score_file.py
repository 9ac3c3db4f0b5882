"""Scoring one file chunk by chunk into its output, in order, resumable from finished chunks."""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from ..columns import TEXT_COLUMNS, detect_column
from ..errors import UserError, require
from ..scorer import Scorer
from ..scoring import Summary, result_names, score_frame
from .config import BatchConfig
from .formats import format_of
from .parts import Parts, output_lock
from .tables import TableReader
from .writers import empty_frame, output_schema, write_rows

log = logging.getLogger(__name__)
# Called after each chunk with the rows done so far (read and scored, or found done by --resume).
Progress = Callable[[int], object]


@dataclass
class FileSummary(Summary):
    """A score-csv run's summary, naming the text encoding the input was read in."""

    encoding: str = ""  # "cp1252 (detected)", "latin-1"; empty for Parquet

    def text(self) -> str:
        return super().text() + (f"; read as {self.encoding}" if self.encoding else "")


def _fingerprint(cfg: BatchConfig) -> str:
    stat = Path(cfg.input).stat()
    options = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "overwrite", "threads", "provider")}
    # Batching changes no score of fp32 or static int8: hashed as the earlier default, 32, whatever it is, so a
    # run interrupted under an earlier version (which hashed its 32) still resumes.
    options["batch_size"] = 32
    return hashlib.sha256(
        json.dumps([str(Path(cfg.input).resolve()), stat.st_size, stat.st_mtime_ns, options], default=str).encode()
    ).hexdigest()


def score_file(cfg: BatchConfig, scorer: Scorer | None = None, progress: Progress | None = None) -> Summary:
    """Score `cfg.input` chunk by chunk into `cfg.output`; finished chunks survive an interruption.

    `progress` is called with the rows done after each chunk. `cfg.engine == "ray"` hands the whole run to
    the Ray engine (the [ray] extra).
    """
    if cfg.engine == "ray":
        require("ray", "--engine ray")
        from .ray_engine import score_with_ray

        return score_with_ray(cfg)
    if cfg.input != "-" and Path(cfg.input).is_dir():
        raise UserError(f"{cfg.input} is a folder; score-csv reads one file (--engine ray reads folders)")
    in_fmt = cfg.input_format or ("csv" if cfg.input == "-" else format_of(cfg.input))
    to_stdout = cfg.output == "-"
    out_fmt = "csv" if to_stdout else format_of(cfg.output)
    output = Path(cfg.output)
    if not to_stdout and cfg.input != "-" and output.resolve() == Path(cfg.input).resolve():
        raise UserError("the output would replace the input; choose another --output")
    if output.is_dir():
        raise UserError(f"--output {output} is a folder; name a file (.csv, .tsv, .parquet, .jsonl or .json)")
    reader = TableReader(cfg.input, in_fmt, cfg.chunk_rows, cfg.encoding, cfg.on_bad_lines, stdin=sys.stdin.buffer)
    # The model loads before any output is touched: a model or provider error changes nothing on disk.
    scorer = scorer or Scorer.load(cfg.model, cfg.provider, cfg.threads, batch_size=cfg.batch_size)
    if to_stdout:
        return _score_chunks(cfg, scorer, reader, None, progress)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror}") from error
    with output_lock(output):
        parts = Parts(output, out_fmt)
        parts.start(cfg.resume, cfg.overwrite, None if cfg.input == "-" else _fingerprint(cfg), scorer.labels)
        try:
            return _score_chunks(cfg, scorer, reader, parts, progress)
        except BaseException:
            parts.abandon()
            raise


def _score_chunks(
    cfg: BatchConfig, scorer: Scorer, reader: TableReader, parts: Parts | None, progress: Progress | None
) -> FileSummary:
    labels = tuple(scorer.labels)
    summary = FileSummary(
        provider=scorer.provider,
        model=str(scorer.folder),
        output=cfg.output,
        min_confidence=cfg.min_confidence,
        label_column=cfg.label_column,
        classes=labels,
    )
    bar = tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc="scoring", disable=not sys.stderr.isatty())
    started = time.monotonic()
    text_column, schema, count = None, None, 0
    for index, frame in enumerate(reader):
        if text_column is None:
            text_column = detect_column(frame, TEXT_COLUMNS, "text", cfg.text_column)
            if cfg.label_column:
                detect_column(frame, (), "label", cfg.label_column)  # a missing column is an error, now
            names = result_names([str(c) for c in frame.columns], labels)
            schema = output_schema(reader.schema, names)
            if reader.encoding_used:
                log.info("reading %s as %s", "stdin" if cfg.input == "-" else cfg.input, reader.encoding_used)
        count = index + 1
        if parts and (done := parts.done(index)):
            summary.record(done)
        else:
            scored = score_frame(scorer, frame, text_column, cfg.batch_size, cfg.min_confidence)
            gold = frame[cfg.label_column] if cfg.label_column else None
            counts = Summary.counts(scored, names, gold, labels)
            summary.record(counts)
            summary.scored_now += counts["scored"]
            if parts:
                parts.write(index, scored, schema, cfg.raw, counts)
            else:
                write_rows(scored, sys.stdout, "csv", first=index == 0, raw=cfg.raw)
                sys.stdout.flush()
        bar.update(reader.bytes_read - bar.n) if reader.total_bytes else bar.update(len(frame))
        bar.set_postfix(rows=summary.rows, rev_s=f"{summary.scored_now / max(time.monotonic() - started, 1e-9):.1f}")
        if progress:
            progress(summary.rows)
    bar.close()
    if count == 0:  # no rows: the output still has the input's columns and ours
        schema = output_schema(reader.schema, result_names(reader.columns, labels))
        if parts:
            parts.write_empty(schema, cfg.raw)
            count = 1
        else:
            write_rows(empty_frame(schema), sys.stdout, "csv", first=True, raw=cfg.raw)
    if parts:
        parts.join(count, schema)
    summary.bad_lines = reader.bad_count
    summary.encoding = reader.encoding_used  # final: "auto" may have moved on from ASCII to cp1252
    summary.seconds = time.monotonic() - started
    _log_bad_lines(reader, cfg.on_bad_lines)
    if summary.rows and not summary.scored:
        log.warning("no row of column %r was scored (see the status column): is it the review text?", text_column)
    return summary


def _log_bad_lines(reader: TableReader, mode: str) -> None:
    if not reader.bad_count:
        return
    lines = ", ".join(str(b.line) for b in reader.bad_lines)
    verb = "skipped" if mode == "skip" else "kept as rows with a status"
    more = ", …" if reader.bad_count > len(reader.bad_lines) else ""
    log.warning("%d malformed lines %s (lines %s%s)", reader.bad_count, verb, lines, more)
