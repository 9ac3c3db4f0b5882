"""`score-csv`: score a file of reviews on ONNX Runtime, streaming, resumable, losing no row.

Each input row appears in the output exactly once, in input order, with every original column and
`label`, `score` (probability of the positive, i.e. second, label), `confidence` (probability of the
predicted label) and `status` ("ok", or why the row was not scored). The output keeps the input's
format (reviews.tsv → reviews.scored.tsv) unless --output names another.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from .configargs import add_config_arguments, config_from_args
from .data import TEXT_COLUMNS, detect_column
from .errors import UserError
from .metrics import predicted_classes, probabilities
from .runtime import Scorer
from .streams import (
    FORMATS,
    BadLines,
    TableReader,
    close_json_array,
    format_of,
    has_words,
    is_missing,
    to_arrow,
    write_rows,
)
from .text import clean_text

log = logging.getLogger(__name__)
RESULT_COLUMNS = ("label", "score", "confidence", "status")
RESULT_TYPES = {"label": pa.string(), "score": pa.float64(), "confidence": pa.float64(), "status": pa.string()}
OUTPUT_FORMATS = ("csv", "tsv", "parquet", "jsonl", "json")
NO_WORDS_STATUS = "skipped: no words"


@dataclass
class BatchConfig:
    input: str = field(metadata={"help": "CSV, TSV, Parquet, JSON Lines or JSON-array file; '-' reads CSV from stdin"})
    output: str | None = field(
        default=None,
        metadata={
            "help": "output file (.csv, .tsv, .parquet, .jsonl or .json); '-' for stdout "
            "(default: INPUT with .scored before its extension, or stdout for stdin)"
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
        default="utf-8-sig", metadata={"help": "input text encoding (UTF-8 with or without BOM by default)"}
    )
    on_bad_lines: BadLines = field(
        default="error",
        metadata={
            "help": "really malformed lines (too many fields, a quote never closed, invalid JSON): stop with "
            "their line number, skip them, or keep them as rows with a status"
        },
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
        if self.output is None and self.engine == "local":
            self.output = "-" if self.input == "-" else default_output(self.input, self.input_format)
        if self.batch_size < 1 or self.chunk_rows < 1:
            raise UserError("--batch-size and --chunk-rows must be positive")
        if self.resume and "-" in (self.input, self.output):
            raise UserError("--resume needs an input file and an output file (stdin cannot be read again)")


def default_output(source: str, input_format: str | None = None) -> str:
    """`reviews.2024.csv` → `reviews.2024.scored.csv`: the whole stem, and the input's own format."""
    path = Path(source)
    if path.suffix.lower() in FORMATS:
        return str(path.with_name(f"{path.stem}.scored{path.suffix}"))
    return str(path.with_name(f"{path.name}.scored.{input_format or 'csv'}"))


def result_names(columns: list[str]) -> dict[str, str]:
    """Our column names, suffixed with _pred (then _pred2, …) where the input already has that name."""
    names = {}
    for name in RESULT_COLUMNS:
        new, i = name + "_pred" if name in columns else name, 1
        while new in columns:
            i += 1
            new = f"{name}_pred{i}"
        names[name] = new
    return names


def output_schema(input_schema: pa.Schema, names: dict[str, str]) -> pa.Schema:
    return pa.schema(list(input_schema) + [pa.field(names[k], RESULT_TYPES[k]) for k in RESULT_COLUMNS])


def empty_frame(schema: pa.Schema) -> pd.DataFrame:
    return pd.DataFrame({name: pd.Series(dtype=object) for name in schema.names})


def review_status(value: object) -> tuple[str, str | None]:
    """The rule for one cell: ("ok", its cleaned text), or (why it is not scored, None).

    score-csv, Ray and the app all decide through it, so the same text gets the same answer.
    """
    if is_missing(value):
        return "skipped: missing", None
    if not isinstance(value, str):
        return f"skipped: not text ({type(value).__name__})", None
    cleaned = clean_text(value)
    if not cleaned:
        return "skipped: empty", None
    if not has_words(cleaned):
        return NO_WORDS_STATUS, None  # an id, a date or a star count is never scored as a review
    return "ok", cleaned


def row_statuses(values: pd.Series, flags: list[str] | None) -> tuple[list[str], list[str]]:
    """Each row's status ("ok" or why it is not scored) and the cleaned texts of the "ok" rows."""
    statuses, texts = [], []
    for value, flag in zip(values, flags or [""] * len(values), strict=True):
        status, cleaned = (flag, None) if flag else review_status(value)
        statuses.append(status)
        if cleaned is not None:
            texts.append(cleaned)
    return statuses, texts


def score_frame(scorer: Scorer, frame: pd.DataFrame, text_column: str, batch_size: int = 32) -> pd.DataFrame:
    """The frame with label/score/confidence/status added; bad rows get a status, never an exception."""
    names = result_names([str(c) for c in frame.columns])
    statuses, texts = row_statuses(frame[text_column], frame.attrs.get("bad_line"))
    rows = [i for i, status in enumerate(statuses) if status == "ok"]
    label = np.full(len(frame), None, dtype=object)
    score = np.full(len(frame), np.nan)
    confidence = np.full(len(frame), np.nan)
    if texts:
        probs = probabilities(scorer.logits(texts, batch_size, cleaned=True))
        label[rows] = [scorer.labels[i] for i in predicted_classes(probs)]
        score[rows] = probs[:, 1]
        confidence[rows] = probs.max(axis=1)
    out = frame.copy()
    out.attrs = {}
    out[names["label"]] = label
    # Nullable floats: a row with no score has a missing value (empty in CSV, null elsewhere).
    out[names["score"]] = pd.array(score.round(6), dtype="Float64")
    out[names["confidence"]] = pd.array(confidence.round(6), dtype="Float64")
    out[names["status"]] = statuses
    return out


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    skipped: int = 0
    bad_lines: int = 0
    scored_now: int = 0  # scored by this run (a resumed run also counts what it found done)
    labels: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    provider: str = ""
    model: str = ""
    output: str = ""

    @staticmethod
    def counts(frame: pd.DataFrame, names: dict[str, str]) -> dict:
        """What one scored chunk adds to the summary (kept per part, so a resumed run counts it too)."""
        ok = frame[names["status"]] == "ok"
        return {
            "rows": len(frame),
            "scored": int(ok.sum()),
            "labels": dict(Counter(frame.loc[ok, names["label"]].tolist())),
        }

    def record(self, counts: dict) -> None:
        self.rows += counts["rows"]
        self.scored += counts["scored"]
        self.skipped += counts["rows"] - counts["scored"]
        for label, count in counts["labels"].items():
            self.labels[label] = self.labels.get(label, 0) + count

    def shares(self) -> str:
        if not self.scored:
            return "no review scored"
        return ", ".join(f"{label} {count / self.scored:.1%}" for label, count in sorted(self.labels.items()))

    def text(self) -> str:
        rate = self.scored_now / self.seconds if self.seconds else 0.0
        return (
            f"rows {self.rows}, scored {self.scored}, skipped {self.skipped}, bad lines {self.bad_lines}; "
            f"{self.shares()}; {rate:.1f} reviews/s in {self.seconds:.1f} s on {self.provider}; "
            f"model {self.model}; output {self.output}"
        )


@contextmanager
def _atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside `path`, renamed onto it only once the block finished writing.

    A kill mid-write leaves the previous file (or none), never a truncated one: what resume trusts.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    yield tmp
    os.replace(tmp, path)


def write_atomically(path: Path, text: str) -> None:
    with _atomic_target(path) as tmp:
        tmp.write_text(text)


@contextmanager
def output_lock(output: Path) -> Iterator[None]:
    """Hold `.OUTPUT.lock` beside the output for the run; a second run on the same output is refused.

    An OS lock (flock), so a killed run never leaves a stale lock behind.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    lock_path = output.with_name(f".{output.name}.lock")
    for _ in range(5):
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise UserError(f"cannot write beside {output}: {error.strerror}") from error
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"another score-csv run is writing {output}; wait for it to finish or stop it") from None
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed the file while we opened it: lock the new one
    else:
        raise UserError(f"could not lock {lock_path}")
    try:
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        os.close(fd)


class Parts:
    """Finished chunks of one run beside the output (`OUTPUT.parts/`), with their counts for resume.

    `run.json` holds the run's fingerprint; `done.jsonl` gets one line per finished part, appended
    after the part file is in place (constant cost per part; a torn last line is ignored on resume).
    """

    def __init__(self, output: Path, fmt: str) -> None:
        self.output, self.fmt = output, fmt
        self.folder = output.with_name(output.name + ".parts")
        self.run_file, self.done_file = self.folder / "run.json", self.folder / "done.jsonl"
        self.finished: dict[int, dict] = {}

    def path(self, index: int) -> Path:
        return self.folder / f"part-{index:06d}.{self.fmt}"

    def done(self, index: int) -> dict | None:
        counts = self.finished.get(index)
        return counts if counts is not None and self.path(index).exists() else None

    def start(self, resume: bool, overwrite: bool, fingerprint: str | None) -> None:
        """Check what is on disk against the options; only --overwrite ever removes earlier work."""
        if resume:
            if not self.run_file.exists():
                raise UserError(f"--resume: no interrupted run of {self.output} to continue (no {self.run_file})")
            if json.loads(self.run_file.read_text())["fingerprint"] != fingerprint:
                raise UserError(
                    "--resume: the input file or the options changed since the interrupted run; "
                    "start again with --overwrite"
                )
            for line in self.done_file.read_text().splitlines() if self.done_file.exists() else []:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # the run was killed while appending this line: that part is redone
                self.finished[entry["index"]] = entry["counts"]
            return
        if self.folder.exists() and not overwrite:
            raise UserError(
                f"an interrupted run left {self.folder}; continue it with --resume or start over with --overwrite"
            )
        if self.output.exists() and not overwrite:
            raise UserError(f"output {self.output} already exists; pass --overwrite to replace it")
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        write_atomically(self.run_file, json.dumps({"fingerprint": fingerprint}))

    def write(self, index: int, frame: pd.DataFrame, schema: pa.Schema, raw: bool, counts: dict) -> None:
        with _atomic_target(self.path(index)) as tmp:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                pq.write_table(to_arrow(frame, schema), tmp)
            else:
                with tmp.open("w", encoding="utf-8", newline="") as handle:
                    write_rows(frame, handle, self.fmt, first=index == 0, raw=raw)
        with self.done_file.open("a", encoding="utf-8") as log_file:
            log_file.write(json.dumps({"index": index, "counts": counts}) + "\n")
        self.finished[index] = counts

    def write_empty(self, schema: pa.Schema, raw: bool) -> None:
        self.write(0, empty_frame(schema), schema, raw, {"rows": 0, "scored": 0, "labels": {}})

    def join(self, count: int, schema: pa.Schema) -> None:
        """All parts, in order, into the output (atomically); then the parts are removed."""
        with _atomic_target(self.output) as tmp:
            if self.fmt == "parquet":
                import pyarrow.parquet as pq

                with pq.ParquetWriter(tmp, schema) as writer:
                    for index in range(count):
                        writer.write_table(pq.read_table(self.path(index), schema=schema))
            else:
                with tmp.open("wb") as out:
                    for index in range(count):
                        with self.path(index).open("rb") as handle:
                            shutil.copyfileobj(handle, out)
                if self.fmt == "json":
                    with tmp.open("a", encoding="utf-8") as handle:
                        close_json_array(handle, wrote_rows=self.finished.get(0, {}).get("rows", 0) > 0)
        shutil.rmtree(self.folder)

    def abandon(self) -> None:
        """After a failure: keep finished work for --resume; leave nothing behind if nothing finished."""
        if not self.finished:
            shutil.rmtree(self.folder, ignore_errors=True)


def _fingerprint(cfg: BatchConfig) -> str:
    stat = Path(cfg.input).stat()
    options = {k: v for k, v in asdict(cfg).items() if k not in ("resume", "overwrite", "threads", "provider")}
    return hashlib.sha256(
        json.dumps([str(Path(cfg.input).resolve()), stat.st_size, stat.st_mtime_ns, options], default=str).encode()
    ).hexdigest()


def score_file(cfg: BatchConfig, scorer: Scorer | None = None) -> Summary:
    """Score `cfg.input` chunk by chunk into `cfg.output`; finished chunks survive an interruption."""
    if cfg.engine == "ray":
        from .distributed import score_with_ray

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
    scorer = scorer or Scorer.load(cfg.model, cfg.provider, cfg.threads)
    if to_stdout:
        return _score_chunks(cfg, scorer, reader, None)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write {output}: {error.strerror}") from error
    with output_lock(output):
        parts = Parts(output, out_fmt)
        parts.start(cfg.resume, cfg.overwrite, None if cfg.input == "-" else _fingerprint(cfg))
        try:
            return _score_chunks(cfg, scorer, reader, parts)
        except BaseException:
            parts.abandon()
            raise


def _score_chunks(cfg: BatchConfig, scorer: Scorer, reader: TableReader, parts: Parts | None) -> Summary:
    summary = Summary(provider=scorer.provider, model=str(scorer.folder), output=cfg.output)
    bar = tqdm(total=reader.total_bytes, unit="B", unit_scale=True, desc="scoring", disable=not sys.stderr.isatty())
    started = time.monotonic()
    text_column, schema, count = None, None, 0
    for index, frame in enumerate(reader):
        if text_column is None:
            text_column = detect_column(frame, TEXT_COLUMNS, "text", cfg.text_column)
            names = result_names([str(c) for c in frame.columns])
            schema = output_schema(reader.schema, names)
        count = index + 1
        if parts and (done := parts.done(index)):
            summary.record(done)
        else:
            scored = score_frame(scorer, frame, text_column, cfg.batch_size)
            counts = Summary.counts(scored, names)
            summary.record(counts)
            summary.scored_now += counts["scored"]
            if parts:
                parts.write(index, scored, schema, cfg.raw, counts)
            else:
                write_rows(scored, sys.stdout, "csv", first=index == 0, raw=cfg.raw)
                sys.stdout.flush()
        bar.update(reader.bytes_read - bar.n) if reader.total_bytes else bar.update(len(frame))
        bar.set_postfix(rows=summary.rows, rev_s=f"{summary.scored_now / max(time.monotonic() - started, 1e-9):.1f}")
    bar.close()
    if count == 0:  # no rows: the output still has the input's columns and ours
        schema = output_schema(reader.schema, result_names(reader.columns))
        if parts:
            parts.write_empty(schema, cfg.raw)
            count = 1
        else:
            write_rows(empty_frame(schema), sys.stdout, "csv", first=True, raw=cfg.raw)
    if parts:
        parts.join(count, schema)
    summary.bad_lines = reader.bad_count
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score-csv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, BatchConfig, positional=("input",))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None, verbose: bool = False) -> int:
    from .cli import run_guarded, setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose or verbose)

    def run() -> None:
        cfg = config_from_args(BatchConfig, args)
        if cfg.output != "-" and FORMATS.get(Path(cfg.output).suffix.lower()) not in OUTPUT_FORMATS:
            raise UserError(f"--output must end in .csv, .tsv, .parquet, .jsonl or .json, not {cfg.output}")
        try:
            summary = score_file(cfg)
        except KeyboardInterrupt:
            raise UserError("interrupted: finished chunks are kept; continue with --resume") from None
        except BrokenPipeError:
            # The reader of stdout went away (`| head`): stop quietly, as other command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise UserError("stdout was closed before every row was written") from None
        print(summary.text(), file=sys.stderr)

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
