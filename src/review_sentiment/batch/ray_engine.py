"""`score-csv --engine ray`: the batch scorer's per-chunk code on Ray Data, over files, folders, globs or URIs.

Each actor holds one ONNX Runtime session and runs `score_frame` on pandas batches; the output is a
folder of Parquet shards, or one file when --output names a file (.csv, .parquet, …). Rows of each
input file keep their order; Ray may read the files themselves in another order. Install with the `[ray]` extra.
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import shutil
import time
from pathlib import Path

from ..columns import TEXT_COLUMNS, detect_column
from ..errors import UserError
from ..manifest import folder_labels, resolve_model_folder
from ..scorer import Scorer
from ..scoring import Summary, result_names, score_frame
from .config import BatchConfig
from .formats import FORMATS, OUTPUT_FORMATS, format_of
from .parts import Parts, output_lock
from .writers import output_schema

log = logging.getLogger(__name__)
RAY_PATH = "path"  # the column Ray's readers add with include_paths=True


class ScoringActor:
    """One session per actor, built once; called with pandas batches.

    `source` is (column name, input folder as Ray spells paths) for folder and glob inputs: Ray's `path`
    column is then replaced by that column, each row's input file relative to the input folder.
    """

    def __init__(
        self,
        model: str,
        provider: str,
        threads: int | None,
        text_column: str,
        batch_size: int,
        min_confidence=None,
        source: tuple[str, str] | None = None,
    ) -> None:
        self.scorer = Scorer.load(model, provider, threads, max_batch=batch_size)
        self.text_column, self.batch_size, self.min_confidence = text_column, batch_size, min_confidence
        self.source = source

    def __call__(self, batch):
        """Score one pandas batch; rows keep their order."""
        if self.source is None:
            return score_frame(self.scorer, batch, self.text_column, self.batch_size, self.min_confidence)
        name, base = self.source
        paths = batch.pop(RAY_PATH)
        scored = score_frame(self.scorer, batch, self.text_column, self.batch_size, self.min_confidence)
        scored[name] = [p[len(base) + 1 :] if p.startswith(base + "/") else p for p in paths]
        return scored


def expand_paths(source: str) -> list[str]:
    """A file, folder or URI as it is; a glob expanded, locally or on any pyarrow filesystem."""
    if not any(ch in source for ch in "*?["):
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


def _plan(resources: dict, provider: str) -> dict:
    """Actor pool from the cluster's resources.

    Actors hold their CPU for the whole run and Ray Data's read tasks need one CPU each: if the actors
    take every CPU the files are never read and the run hangs silently. So CPU actors take at most half
    the CPUs, GPU actors (one GPU and one CPU each) leave one CPU free, and a cluster with fewer than
    2 CPUs is refused.
    """
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cpus < 2:
        raise UserError(
            f"the Ray cluster has {cpus:g} CPU(s); --engine ray needs at least 2 (one to read the files, one per "
            "scoring actor) or it would hang: start Ray with more CPUs, or use --engine local"
        )
    if provider in ("cuda", "tensorrt") or (provider == "auto" and gpus >= 1):
        if gpus < 1:
            raise UserError(f"--provider {provider} with --engine ray needs GPUs in the Ray cluster; it has none")
        return {"actors": min(int(gpus), int(cpus) - 1), "num_gpus": 1, "num_cpus": 1, "threads": None}
    actors = int(cpus // 2)
    return {"actors": actors, "num_gpus": 0, "num_cpus": 1, "threads": max(1, int(cpus // (2 * actors)))}


def input_format(paths: list[str], given: str | None) -> str:
    """The format of the input: given, else from the file names (those inside a folder included)."""
    if given:
        return given
    names = paths
    if len(paths) == 1 and "://" not in paths[0] and Path(paths[0]).is_dir():
        names = [str(p) for p in Path(paths[0]).rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
    elif len(paths) == 1 and "://" in paths[0] and not Path(paths[0]).suffix:
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
    """Score with Ray Data into a folder of Parquet shards, or, for an output file name, into that one file."""
    try:
        import ray
    except ImportError as error:
        raise UserError("--engine ray needs Ray: pip install 'review-sentiment[ray]'") from error
    paths = expand_paths(cfg.input)
    fmt = input_format(paths, cfg.input_format)
    readers = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "jsonl": ray.data.read_json}
    if fmt not in readers:
        raise UserError(f"--engine ray reads Parquet, CSV or JSON Lines, not {fmt!r}")
    folder = input_folder(cfg.input)
    output, single_file = _output(cfg, folder)
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    plan = _plan(ray.cluster_resources(), cfg.provider)  # before any read: a starved cluster would hang
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    model = str(resolve_model_folder(cfg.model))
    try:
        dataset = readers[fmt](paths, include_paths=folder is not None)
        return _score(cfg, dataset, model, output, single_file, plan, folder)
    except ray.exceptions.RayError as error:
        cause = str(error).strip().splitlines()[-1][:300]
        raise UserError(
            f"Ray could not read or score {cfg.input}: {cause}. Ray's readers are stricter than the local engine's "
            "(duplicate column names and short CSV rows fail there): try --engine local"
        ) from error


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
    if _exists(output) and not cfg.overwrite:
        raise UserError(f"output {output} already exists; pass --overwrite to replace it")
    return output, single_file


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
    cfg: BatchConfig, dataset, model: str, output: str, single_file: bool, plan: dict, folder: str | None
) -> Summary:
    import pandas as pd
    import ray

    columns = [c for c in dataset.schema().names if folder is None or c != RAY_PATH]
    if cfg.label_column and cfg.label_column not in columns:
        raise UserError(f"label column {cfg.label_column!r} not found; columns are: {', '.join(columns)}")
    sample = pd.DataFrame(dataset.take(200), columns=dataset.schema().names)[columns]
    text_column = detect_column(sample, TEXT_COLUMNS, "text", cfg.text_column)
    labels = folder_labels(Path(model))  # where the actors' Scorer reads them
    names = result_names(columns, labels)
    source = None if folder is None else (source_name(columns + list(names.values())), _ray_base(folder))
    log.info("ray: %d actor(s), %s CPU and %s GPU each", plan["actors"], plan["num_cpus"], plan["num_gpus"])
    started = time.monotonic()
    scored = dataset.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "model": model,
            "provider": cfg.provider,
            "threads": cfg.threads or plan["threads"],
            "text_column": text_column,
            "batch_size": cfg.batch_size,
            "min_confidence": cfg.min_confidence,
            "source": source,
        },
        batch_size=cfg.chunk_rows,
        batch_format="pandas",
        compute=ray.data.ActorPoolStrategy(size=plan["actors"]),  # `concurrency=` is deprecated since Ray 2.51
        num_cpus=plan["num_cpus"],
        num_gpus=plan["num_gpus"],
    )
    summary = Summary(
        provider=f"ray ({cfg.provider})",
        model=model,
        output=output,
        min_confidence=cfg.min_confidence,
        label_column=cfg.label_column,
        classes=labels,
    )

    def tally(frame) -> dict:
        return Summary.counts(frame, names, frame[cfg.label_column] if cfg.label_column else None, labels)

    if single_file:  # replaced atomically at the end, under the output's lock
        schema = _file_schema(dataset, columns, names, source)
        _collect_into_file(scored, Path(output), schema, cfg.raw, summary, tally)
    else:
        _write_folder(scored, output, names, cfg, summary, tally)
    summary.seconds = time.monotonic() - started
    summary.scored_now = summary.scored
    return summary


def source_name(columns: list[str]) -> str:
    """`source_file`, suffixed like our other columns where the input already has that name."""
    name, i = "source_file", 1
    while name in columns:
        name, i = f"source_file_pred{'' if i == 1 else i}", i + 1
    return name


def _file_schema(dataset, columns: list[str], names: dict[str, str], source: tuple[str, str] | None):
    """The single output file's schema: the input's columns, ours, then the source file's column."""
    import pyarrow as pa

    if source is None:
        return output_schema(_arrow_schema(dataset), names)
    schema = output_schema(_arrow_schema(dataset).remove_metadata(), names)
    return pa.schema([f for f in schema if f.name != RAY_PATH or f.name in columns] + [(source[0], pa.string())])


def _write_folder(scored, output: str, names: dict[str, str], cfg: BatchConfig, summary: Summary, tally) -> None:
    """Parquet shards into a folder (or URI); --overwrite empties it first, so no old shard remains."""
    import ray

    with output_lock(Path(output)) if "://" not in output else contextlib.nullcontext():
        if cfg.overwrite:
            _clear(output)
        scored.write_parquet(output)
    wanted = [names["status"], names["label"], *([cfg.label_column] if cfg.label_column else [])]
    for batch in ray.data.read_parquet(output).select_columns(wanted).iter_batches(batch_format="pandas"):
        summary.record(tally(batch))


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
    return schema if isinstance(schema, pa.Schema) else pa.schema([(n, pa.string()) for n in dataset.schema().names])


def _collect_into_file(scored, output: Path, schema, raw: bool, summary: Summary, tally) -> None:
    """Stream the scored rows, in order, into one local file with the local engine's writer."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(output):
        parts = Parts(output, format_of(str(output)))
        parts.start(resume=False, overwrite=True, fingerprint=None, labels=summary.classes)
        count = 0
        try:
            for index, frame in enumerate(scored.iter_batches(batch_format="pandas")):
                counts = tally(frame)
                summary.record(counts)
                parts.write(index, frame, schema, raw, counts)
                count = index + 1
            if count == 0:
                parts.write_empty(schema, raw)
                count = 1
        except BaseException:
            parts.abandon()
            raise
        parts.join(count, schema)
