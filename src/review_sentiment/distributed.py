"""`score-csv --engine ray`: the batch scorer's per-chunk code on Ray Data, over files, folders, globs or URIs.

Each actor holds one ONNX Runtime session and runs `score_frame` on pandas batches; the output is a
folder of Parquet shards. Rows of each input file keep their order; Ray may read the files themselves
in another order. Install with the `[ray]` extra.
"""

from __future__ import annotations

import fnmatch
import glob
import logging
import time
from pathlib import Path

from .batch import BatchConfig, Summary, result_names, score_frame
from .data import TEXT_COLUMNS, detect_column
from .errors import UserError
from .runtime import Scorer, resolve_model_folder

log = logging.getLogger(__name__)


class ScoringActor:
    """One session per actor, built once; called with pandas batches."""

    def __init__(self, model: str, provider: str, threads: int | None, text_column: str, batch_size: int) -> None:
        self.scorer = Scorer.load(model, provider, threads)
        self.text_column, self.batch_size = text_column, batch_size

    def __call__(self, batch):
        return score_frame(self.scorer, batch, self.text_column, self.batch_size)


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

    On a 2-CPU machine two 1-CPU actors leave nothing for Ray Data's read tasks and the run hangs,
    so CPU actors take at most half the CPUs; GPU actors take one GPU each.
    """
    cpus, gpus = resources.get("CPU", 1.0), resources.get("GPU", 0.0)
    if provider in ("cuda", "tensorrt") or (provider == "auto" and gpus >= 1):
        if gpus < 1:
            raise UserError(f"--provider {provider} with --engine ray needs GPUs in the Ray cluster; it has none")
        return {"concurrency": int(gpus), "num_gpus": 1, "num_cpus": 1, "threads": None}
    actors = max(1, int(cpus // 2))
    return {"concurrency": actors, "num_gpus": 0, "num_cpus": 1, "threads": max(1, int(cpus // (2 * actors)))}


def score_with_ray(cfg: BatchConfig) -> Summary:
    """Score with Ray Data; writes Parquet shards to `cfg.output` (a folder or URI)."""
    try:
        import pyarrow.dataset as pads
        import ray
    except ImportError as error:
        raise UserError("--engine ray needs Ray: pip install 'review-sentiment[ray]'") from error
    paths = expand_paths(cfg.input)
    first = paths[0].rstrip("/")
    suffix = cfg.input_format or Path(first).suffix.lstrip(".").lower() or "parquet"
    readers = {
        "parquet": ray.data.read_parquet,
        "csv": ray.data.read_csv,
        "jsonl": ray.data.read_json,
        "json": ray.data.read_json,
    }
    if suffix not in readers:
        raise UserError(f"--engine ray reads Parquet, CSV or JSONL, not {suffix!r}")
    output = (
        cfg.output if cfg.output and not cfg.output.endswith(".csv") else str(Path(first).with_suffix("")) + ".scored"
    )
    if "://" not in output and Path(output).exists() and any(Path(output).iterdir()) and not cfg.overwrite:
        raise UserError(f"output {output} already exists; pass --overwrite to replace it")
    if not ray.is_initialized():
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().execution_options.preserve_order = True
    model = str(resolve_model_folder(cfg.model))
    dataset = readers[suffix](paths)
    columns = dataset.schema().names
    import pandas as pd

    text_column = detect_column(pd.DataFrame(columns=columns), TEXT_COLUMNS, "text", cfg.text_column)
    plan = _plan(ray.cluster_resources(), cfg.provider)
    log.info("ray: %d actor(s), %s CPU and %s GPU each", plan["concurrency"], plan["num_cpus"], plan["num_gpus"])
    started = time.monotonic()
    scored = dataset.map_batches(
        ScoringActor,
        fn_constructor_kwargs={
            "model": model,
            "provider": cfg.provider,
            "threads": cfg.threads or plan["threads"],
            "text_column": text_column,
            "batch_size": cfg.batch_size,
        },
        batch_size=cfg.chunk_rows,
        batch_format="pandas",
        concurrency=plan["concurrency"],
        num_cpus=plan["num_cpus"],
        num_gpus=plan["num_gpus"],
    )
    scored.write_parquet(output)
    names = result_names(columns)
    counts = pads.dataset(output, format="parquet").to_table(columns=[names["status"], names["label"]]).to_pandas()
    summary = Summary(provider=f"ray ({cfg.provider})", model=model, output=output)
    summary.record(
        {
            "rows": len(counts),
            "scored": int((counts[names["status"]] == "ok").sum()),
            "positive": int((counts[names["label"]] == "positive").sum()),
        }
    )
    summary.seconds = time.monotonic() - started
    return summary
