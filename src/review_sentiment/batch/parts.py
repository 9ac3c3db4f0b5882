"""A run's finished chunks beside its output, the lock that keeps a second run away, atomic writes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ..errors import UserError
from ..text import LABELS
from .writers import close_json_array, empty_frame, to_arrow, write_rows


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


def _check_labels(before: tuple[str, ...], now: tuple[str, ...]) -> None:
    """Parts scored under other labels have other columns and other meanings: never joined to new ones.

    The fingerprint cannot tell, as a model re-exported into the same folder keeps its path."""
    if before != now:
        raise UserError(
            f"--resume: the interrupted run was scored by a model with the labels {list(before)}, this model has "
            f"{list(now)}; resume with that model, or start again with --overwrite"
        )


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

    def start(self, resume: bool, overwrite: bool, fingerprint: str | None, labels: tuple[str, ...]) -> None:
        """Check what is on disk against the options and the model's labels; only --overwrite ever removes
        earlier work."""
        if resume:
            if not self.run_file.exists():
                raise UserError(f"--resume: no interrupted run of {self.output} to continue (no {self.run_file})")
            run = json.loads(self.run_file.read_text())
            # A run.json without labels was written before models had other labels than the two defaults.
            _check_labels(tuple(run.get("labels", LABELS)), tuple(labels))
            if run["fingerprint"] != fingerprint:
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
        write_atomically(self.run_file, json.dumps({"fingerprint": fingerprint, "labels": list(labels)}))

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
