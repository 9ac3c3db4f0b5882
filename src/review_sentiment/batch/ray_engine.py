"""`score-csv --engine ray`: the batch scorer's per-chunk code on Ray Data, over files, folders, globs or URIs.

The nodes read the input (a local path must be on storage every node mounts at the same path; else use a
URI) and score it, each actor one ONNX Runtime session running `score_frame` on the batches. The
driver receives the scored rows in input order and writes them: a folder of Parquet shards named in row
order, or one file when --output names a file (.csv, .parquet, …). Install with the `[ray]` extra.
"""

from __future__ import annotations

import codecs
import fnmatch
import glob
import logging
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..columns import TEXT_COLUMNS, detect_column
from ..errors import UserError
from ..manifest import folder_labels, resolve_model_folder
from ..providers import GPU_BATCH_SIZE
from ..scorer import Scorer
from ..scoring import Summary, result_names, score_frame
from .config import BatchConfig
from .encodings import AUTO, detect_encoding
from .formats import FORMATS, OUTPUT_FORMATS, format_of
from .parts import Parts, output_lock
from .ray_cluster import PoolPlan, connect, import_ray, materialize, model_files, plan_pool
from .tables import arrow_to_frame
from .writers import output_schema, to_arrow

log = logging.getLogger(__name__)
RAY_PATH = "path"  # the column Ray's readers add with include_paths=True
NODE = "__review_sentiment_node__"  # the node that scored a row: counted by the driver, never written
BLOCKS_PER_ACTOR = 4  # input blocks per scoring actor, so that every actor gets work and none waits long at the end
CALL_BATCHES = 8  # model batches per call of an actor
SHARD = re.compile(r"part-\d{5,}\.parquet")
ENCODING_FILES, ENCODING_SAMPLE = 16, 1 << 20  # files, and bytes of each, the encoding is told from


@dataclass
class RaySummary(Summary):
    """A Ray run's summary, with the rows each node scored."""

    rows_per_node: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        spread = ", ".join(f"{node[:8]} {rows:,}" for node, rows in sorted(self.rows_per_node.items()))
        nodes = len(self.rows_per_node)
        return super().text() + (f"; scored on {nodes} node{'s' if nodes != 1 else ''} ({spread})" if spread else "")


class ScoringActor:
    """One session per actor, built once; called with Arrow batches.

    `model` is `model_files()`'s (key, files), written to this node's cache once.
    `source` is (column name, input folder as Ray spells paths) for folder and glob inputs: Ray's `path`
    column is then replaced by that column, each row's input file relative to the input folder.
    """

    def __init__(
        self,
        model: tuple[str, dict[str, bytes]],
        provider: str,
        threads: int | None,
        text_column: str,
        batch_size: int | None,
        min_confidence=None,
        source: tuple[str, str] | None = None,
    ) -> None:
        import ray

        folder = materialize(*model)
        self.scorer = Scorer.load(folder, provider, threads, batch_size=batch_size)
        self.text_column, self.batch_size, self.min_confidence = text_column, batch_size, min_confidence
        self.source = source
        self.node = ray.get_runtime_context().get_node_id()

    def __call__(self, table):
        """Score one Arrow batch (read as the local engine reads it); rows keep their order."""
        batch = arrow_to_frame(table)
        paths = batch.pop(RAY_PATH) if self.source is not None else None
        scored = score_frame(self.scorer, batch, self.text_column, self.batch_size, self.min_confidence)
        if self.source is not None:
            name, base = self.source
            scored[name] = [p[len(base) + 1 :] if p.startswith(base + "/") else p for p in paths]
        scored[NODE] = self.node
        return scored


def expand_paths(source: str) -> list[str]:
    """A file, folder or URI; a glob expanded, locally or on any pyarrow filesystem. Local paths come back
    absolute: the nodes that read them do not share the driver's working folder."""
    if "://" not in source:
        source = os.path.abspath(source)
        if Path(source).is_dir():  # listed here, so that files come out in the order of their names
            return _folder_files(Path(source)) or [source]
    if not any(ch in source for ch in "*?["):
        if "://" not in source and not Path(source).exists():
            raise UserError(f"no such file or folder: {source}")
        return [source]
    if "://" not in source:
        found = sorted(glob.glob(source))
    else:
        from pyarrow import fs

        prefix = source[: min(source.index(ch) for ch in "*?[" if ch in source)].rsplit("/", 1)[0]
        filesystem, base = fs.FileSystem.from_uri(prefix)
        scheme = source.split("://", 1)[0]
        infos = filesystem.get_file_info(fs.FileSelector(base, recursive=True))
        pattern = source.split("://", 1)[1]
        found = sorted(f"{scheme}://{i.path}" for i in infos if fnmatch.fnmatch(i.path, pattern))
    if not found:
        raise UserError(f"no files match {source}")
    return found


def _folder_files(folder: Path) -> list[str]:
    """The files of a folder and its subfolders, by name, leaving out hidden and `_` files as Ray's readers do."""
    return sorted(
        str(p)
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith((".", "_")) for part in p.relative_to(folder).parts)
    )


def input_format(paths: list[str], given: str | None) -> str:
    """The format of the input: given, else from the file names (those inside a folder included)."""
    if given:
        return given
    names = paths
    if len(paths) == 1 and "://" in paths[0] and not Path(paths[0]).suffix:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(paths[0])
        names = [i.path for i in filesystem.get_file_info(fs.FileSelector(base, recursive=True)) if i.is_file]
    formats = {FORMATS.get(Path(n).suffix.lower()) for n in names}
    if len(formats) != 1 or None in formats:
        found = sorted(Path(n).suffix or "(none)" for n in names)[:10]
        raise UserError(f"cannot tell the input format from the file names ({', '.join(found)}); pass --input-format")
    return formats.pop()


def _clear(output: str) -> None:
    """Remove an earlier output folder (--overwrite): new shards must not join old ones."""
    if "://" in output:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(output)
        if filesystem.get_file_info(base).type != fs.FileType.NotFound:
            filesystem.delete_dir(base)
    elif Path(output).is_dir():
        shutil.rmtree(output)
    elif Path(output).exists():
        Path(output).unlink()


def _exists(output: str) -> bool:
    if "://" in output:
        from pyarrow import fs

        filesystem, base = fs.FileSystem.from_uri(output)
        return filesystem.get_file_info(base).type != fs.FileType.NotFound
    return Path(output).exists() and (Path(output).is_file() or any(Path(output).iterdir()))


def score_with_ray(cfg: BatchConfig) -> Summary:
    """Score on a Ray cluster into a folder of Parquet shards, or, for an output file name, into that one file."""
    _refuse_local_only_options(cfg)
    ray = import_ray()
    paths = expand_paths(cfg.input)
    fmt = input_format(paths, cfg.input_format)
    readers = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "jsonl": ray.data.read_json}
    if fmt not in readers:
        raise UserError(f"--engine ray reads Parquet, CSV or JSON Lines, not {fmt!r}")
    encoding = input_encoding(paths, fmt, cfg.encoding)
    folder = input_folder(cfg.input)
    if folder is not None:
        _refuse_a_path_column(paths[0], fmt, encoding)
    output, single_file = _output(cfg, folder)
    model = resolve_model_folder(cfg.model)  # on the driver: a Hub model is downloaded once, here
    address = connect()
    plan = plan_pool(ray.nodes(), cfg.provider)
    log.info("ray: %s, %d node(s), %d scoring actor(s) to start", address, plan.nodes, plan.actors)
    try:
        # Reads take no CPU of their own (see PoolPlan); enough blocks that every actor gets work.
        dataset = readers[fmt](
            paths,
            include_paths=folder is not None,
            num_cpus=0,
            override_num_blocks=max(len(paths), BLOCKS_PER_ACTOR * plan.actors),
            **_read_options(fmt, encoding),
        )
        return _score(cfg, dataset, model, output, single_file, plan, folder)
    except ray.exceptions.RayError as error:
        raise UserError(_ray_failure(cfg.input, error)) from None


def _refuse_local_only_options(cfg: BatchConfig) -> None:
    """Options only the local engine has: refused rather than ignored."""
    if "-" in (cfg.input, cfg.output):
        raise UserError("--engine ray reads and writes files, folders or URIs, not stdin or stdout ('-')")
    if cfg.resume:
        raise UserError("--engine ray has no --resume: a stopped run starts again (use --engine local to resume)")
    if cfg.on_bad_lines != "error":
        raise UserError(
            f"--engine ray stops at a malformed line; --on-bad-lines {cfg.on_bad_lines} needs --engine local"
        )


def input_encoding(paths: list[str], fmt: str, given: str) -> str:
    """The text encoding of CSV or JSON Lines input: given, else told (as the local engine tells it) from the
    first MB of each of the first files on this machine, else UTF-8 for URIs. Files that disagree are refused."""
    if fmt == "parquet":
        return "utf-8"
    if given != AUTO:
        encoding = codecs.lookup(given).name
    elif any("://" in p for p in paths):
        encoding = "utf-8"
    else:
        told = set()
        for path in paths[:ENCODING_FILES]:
            with open(path, "rb") as handle:
                sample = handle.read(ENCODING_SAMPLE + 1)
            told.add(
                codecs.lookup(detect_encoding(sample[:ENCODING_SAMPLE], len(sample) <= ENCODING_SAMPLE).encoding).name
            )
        if len(told) > 1:
            raise UserError(f"the input files are in different encodings ({', '.join(sorted(told))}): pass --encoding")
        encoding = told.pop() if told else "utf-8"
    if fmt == "jsonl" and encoding != "utf-8":
        raise UserError(f"--engine ray reads JSON Lines in UTF-8 only, not {encoding}: use --engine local")
    return encoding


def _read_options(fmt: str, encoding: str) -> dict:
    """The reader's options for a CSV in another encoding than UTF-8 (Arrow transcodes it as it reads)."""
    return {"read_options": _csv_read_options(encoding)} if fmt == "csv" and encoding != "utf-8" else {}


def _refuse_a_path_column(path: str, fmt: str, encoding: str) -> None:
    """Ray names its column of file names `path`, over any column of that name: refuse rather than lose it."""
    import pyarrow.dataset as ds

    formats = {"csv": ds.CsvFileFormat(read_options=_csv_read_options(encoding)), "parquet": "parquet", "jsonl": "json"}
    try:
        names = ds.dataset(path, format=formats[fmt]).schema.names
    except Exception as error:  # the real read reports it, in Ray's words
        log.debug("could not read the columns of %s first: %s", path, error)
        return
    if RAY_PATH in names:
        raise UserError(
            f"{path} has a column named {RAY_PATH!r}, the name Ray's readers give the file name column for folder "
            "and glob inputs, so Ray would replace it: rename it, score the files one by one, or use --engine local"
        )


def _csv_read_options(encoding: str):
    from pyarrow import csv

    return csv.ReadOptions(encoding=encoding)


def _ray_failure(source: str, error: Exception) -> str:
    """One line for a failed Ray run: the last exception Ray reports (not its advice on retries), and what to try."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Invalid)\b.*:", line)]
    cause = (raised or lines or [type(error).__name__])[-1][:300]
    if "://" not in source and ("FileNotFoundError" in cause or "No such file" in cause):
        return (
            f"a Ray node could not read {source}: {cause}. Every node reads the input itself: a local path must be "
            "on storage that every node mounts at the same path, else give a URI (s3://, gs://, …)"
        )
    return (
        f"Ray could not read or score {source}: {cause}. Ray's readers are stricter than the local engine's "
        "(an empty file, duplicate column names and short CSV rows fail there); --engine local reads one file "
        "at a time more leniently"
    )


def _output(cfg: BatchConfig, folder: str | None) -> tuple[str, bool]:
    """The output (given, else a sibling of the input) and whether it is one file; refused when unsafe."""
    output = cfg.output or default_ray_output(cfg.input)
    single_file = Path(output).suffix.lower() in FORMATS
    if single_file and format_of(output) not in OUTPUT_FORMATS:
        raise UserError(f"output must be a folder or a .csv, .tsv, .parquet, .jsonl or .json file, not {output}")
    if single_file and "://" in output:
        raise UserError(f"--engine ray writes one file only on this machine; give a folder for {output} instead")
    if folder is not None and _inside(output, folder):
        raise UserError(
            f"output {output} is inside the input folder {folder}, where the next run over that folder would read "
            f"it as input; choose an output outside it (the default is {default_ray_output(cfg.input)})"
        )
    if not single_file and _inside(cfg.input if "://" in cfg.input else os.path.abspath(cfg.input), output):
        raise UserError(f"the input {cfg.input} is inside the output folder {output}, which the run replaces")
    exists = _exists(output)
    if exists and not cfg.overwrite:
        raise UserError(f"output {output} already exists; pass --overwrite to replace it")
    if exists and not single_file and (strangers := _not_shards(output)):
        raise UserError(
            f"--overwrite replaces only a folder of an earlier run's shards, and {output} also holds "
            f"{', '.join(strangers[:3])}{' …' if len(strangers) > 3 else ''}: choose another output"
        )
    return output, single_file


def _not_shards(output: str) -> list[str]:
    """What an output folder holds besides an earlier run's shards (all of it, for a file)."""
    from pyarrow import fs

    if "://" in output:
        filesystem, base = fs.FileSystem.from_uri(output)
    else:
        filesystem, base = fs.LocalFileSystem(), os.path.abspath(output)
    if filesystem.get_file_info(base).type != fs.FileType.Directory:
        return [output]
    entries = filesystem.get_file_info(fs.FileSelector(base, recursive=False))
    return sorted(e.base_name for e in entries if not (e.is_file and SHARD.fullmatch(e.base_name)))


def input_folder(source: str) -> str | None:
    """The folder a folder or glob input reads from (`.` for a glob without one); None for one file."""
    if any(ch in source for ch in "*?["):
        prefix = source[: min(source.index(ch) for ch in "*?[" if ch in source)]
        return (prefix.rsplit("/", 1)[0] or "/") if "/" in prefix else "."
    if "://" in source:
        return None if Path(source).suffix else source.rstrip("/")
    return (source.rstrip("/") or "/") if Path(source).is_dir() else None


def _inside(output: str, folder: str) -> bool:
    if "://" in output or "://" in folder:
        return output.rstrip("/").startswith(folder.rstrip("/") + "/") or output.rstrip("/") == folder.rstrip("/")
    return Path(output).resolve().is_relative_to(Path(folder).resolve())


def _ray_base(folder: str) -> str:
    """The input folder as Ray's `path` column spells it: absolute locally, without the scheme for URIs."""
    if "://" in folder:
        return folder.split("://", 1)[1].rstrip("/")
    return str(Path(folder).resolve())


def _score(
    cfg: BatchConfig, dataset, model: Path, output: str, single_file: bool, plan: PoolPlan, folder: str | None
) -> Summary:
    import pandas as pd
    import ray

    if dataset.schema() is None:  # Ray reads no columns from a file without rows
        raise UserError(f"{cfg.input} has no rows to score (--engine local writes an empty output for a header alone)")
    columns = [c for c in dataset.schema().names if folder is None or c != RAY_PATH]
    if cfg.label_column and cfg.label_column not in columns:
        raise UserError(f"label column {cfg.label_column!r} not found; columns are: {', '.join(columns)}")
    sample = pd.DataFrame(dataset.take(200), columns=dataset.schema().names)[columns]
    text_column = detect_column(sample, TEXT_COLUMNS, "text", cfg.text_column)
    labels = folder_labels(model)
    names = result_names(columns, labels)
    source = None if folder is None else (source_name(columns + list(names.values())), _ray_base(folder))
    started = time.monotonic()
    scored = dataset.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            # The files themselves, not an object ref inside the arguments: Ray keeps an actor's arguments for
            # as long as it may restart it, but not a nested ref, and an actor restarted after its node was lost
            # failed to fetch the model ("deleted by the reference counting protocol").
            "model": model_files(model),
            "provider": cfg.provider,
            "threads": cfg.threads or plan.threads,
            "text_column": text_column,
            "batch_size": cfg.batch_size,
            "min_confidence": cfg.min_confidence,
            "source": source,
        },
        # Small calls, so that a small input still spreads over every actor; the shards are chunk_rows each.
        batch_size=min(cfg.chunk_rows, CALL_BATCHES * (cfg.batch_size or GPU_BATCH_SIZE)),
        batch_format="pyarrow",
        # Every slot the cluster has now, from the start; more if nodes join (bounded by what the cluster has).
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=None, initial_size=plan.actors),
        num_cpus=plan.num_cpus,
        num_gpus=plan.num_gpus,
    )
    summary = RaySummary(
        provider=f"ray ({cfg.provider})",
        model=str(model),
        output=output,
        min_confidence=cfg.min_confidence,
        label_column=cfg.label_column,
        classes=labels,
    )
    schema = _file_schema(dataset, columns, names, source)
    frames = _scored_frames(scored, cfg.chunk_rows, summary, names, cfg.label_column, labels)
    if single_file:  # replaced atomically at the end, under the output's lock
        _collect_into_file(frames, Path(output), schema, cfg.raw, summary)
    else:
        _collect_into_folder(frames, output, schema)
    summary.seconds = time.monotonic() - started
    summary.scored_now = summary.scored
    return summary


def _scored_frames(scored, rows: int, summary: RaySummary, names: dict[str, str], label_column: str | None, labels):
    """The scored rows as the driver receives them, in input order, counted once each (per node too), under
    one progress bar; the node column is taken off here."""
    from tqdm.auto import tqdm

    bar = tqdm(unit=" rows", desc="scoring on ray", disable=not sys.stderr.isatty())
    try:
        for frame in scored.iter_batches(batch_format="pandas", batch_size=rows):
            nodes = frame.pop(NODE)
            for node, rows in nodes.value_counts().items():
                summary.rows_per_node[node] = summary.rows_per_node.get(node, 0) + int(rows)
            summary.record(Summary.counts(frame, names, frame[label_column] if label_column else None, labels))
            bar.update(len(frame))
            yield frame
    finally:
        bar.close()


def source_name(columns: list[str]) -> str:
    """`source_file`, suffixed like our other columns where the input already has that name."""
    name, i = "source_file", 1
    while name in columns:
        name, i = f"source_file_pred{'' if i == 1 else i}", i + 1
    return name


def _file_schema(dataset, columns: list[str], names: dict[str, str], source: tuple[str, str] | None):
    """The single output file's schema: the input's columns, ours, then the source file's column."""
    import pyarrow as pa

    schema = output_schema(_arrow_schema(dataset), names)
    if source is None:
        return schema
    return pa.schema([f for f in schema if f.name != RAY_PATH or f.name in columns] + [(source[0], pa.string())])


def _collect_into_folder(frames, output: str, schema) -> None:
    """Parquet shards named in row order (`part-00000.parquet`, …), written by the driver into a new folder
    that replaces the old one at the end (--overwrite never appends); on a URI, the old folder is emptied first."""
    from pyarrow import fs

    if "://" in output:
        filesystem, base = fs.FileSystem.from_uri(output)
        _clear(output)
        _write_shards(frames, filesystem, base, schema)
        return
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(target):
        staging = target.parent / f".{target.name}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _write_shards(frames, fs.LocalFileSystem(), str(staging.resolve()), schema)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        _clear(output)
        staging.rename(target)


def _write_shards(frames, filesystem, folder: str, schema) -> None:
    """One shard per batch, numbered in row order; an empty input still leaves one shard with the columns."""
    import pyarrow.parquet as pq

    filesystem.create_dir(folder, recursive=True)
    count = 0
    for count, frame in enumerate(frames, start=1):
        pq.write_table(to_arrow(frame, schema), f"{folder}/part-{count - 1:05d}.parquet", filesystem=filesystem)
    if count == 0:
        pq.write_table(schema.empty_table(), f"{folder}/part-00000.parquet", filesystem=filesystem)


def default_ray_output(source: str) -> str:
    """A sibling folder named after the input, never inside it: `reviews/`, `reviews/part-*.parquet` or
    `reviews.parquet` → `reviews.scored`; a glob in the current folder → `../<its name>.scored`."""
    folder = input_folder(source) if "://" in source or any(ch in source for ch in "*?[") else None
    if folder is None:
        base = source.rstrip("/")
        base = str(Path(base).with_suffix("")) if Path(base).suffix.lower() in FORMATS else base
    elif "://" in folder:
        base = folder
    else:
        local = Path(folder).resolve()
        base = folder if local.name and Path(folder).name == local.name else str(local)
    return base.rstrip("/._-") + ".scored"


def _arrow_schema(dataset):
    import pyarrow as pa

    schema = dataset.schema().base_schema
    return (
        schema.remove_metadata()
        if isinstance(schema, pa.Schema)
        else pa.schema([(n, pa.string()) for n in dataset.schema().names])
    )


def _collect_into_file(frames, output: Path, schema, raw: bool, summary: Summary) -> None:
    """Stream the scored rows, in order, into one local file with the local engine's writer."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(output):
        parts = Parts(output, format_of(str(output)))
        parts.start(resume=False, overwrite=True, fingerprint=None, labels=summary.classes)
        count = 0
        try:
            for index, frame in enumerate(frames):
                parts.write(index, frame, schema, raw, {"rows": len(frame)})
                count = index + 1
            if count == 0:
                parts.write_empty(schema, raw)
                count = 1
        except BaseException:
            parts.abandon()
            raise
        parts.join(count, schema)
