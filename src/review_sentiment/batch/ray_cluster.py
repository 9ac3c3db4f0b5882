"""What `--engine ray` needs from a cluster: a connection that fails in one line, a scoring pool sized by the
CPUs (or GPUs) each node really has, and the model's files on every node.

The model travels through Ray's object store: a worker never reads the driver's disk, so a relative
`--model` folder, the bundled model of the driver's install and a Hub download made on the driver all
work on nodes that have none of them. Each node keeps one copy per model, keyed by the files' checksums.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import socket
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..manifest import MANIFEST, MODEL_FILE, RUNTIME_FILES, read_manifest, verify_files

log = logging.getLogger(__name__)
CONNECT_HELP = (
    "--engine ray joins the cluster named by RAY_ADDRESS (e.g. ray://head:10001, or the head's host:6379 from a "
    "node of the cluster), else a cluster started on this machine with `ray start`, else starts one here"
)
GPU_PROVIDERS = ("cuda", "tensorrt")


def import_ray():
    """Ray, imported after the settings it reads once, at import."""
    # Ray's C++ core logs at error level for things that are not errors here (actor arguments in the object
    # store); its own log files keep everything.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        # Ray sends a token to an explicit address only in token mode; a token given means that mode.
        os.environ.setdefault("RAY_AUTH_MODE", "token")
    try:
        import ray
    except ImportError as error:
        raise UserError("--engine ray needs Ray: pip install 'review-sentiment[ray]'") from error
    return ray


def connect() -> str:
    """Join (or start) the Ray cluster, quietly; the address joined, for the log and for errors."""
    ray = import_ray()
    address = os.environ.get("RAY_ADDRESS", "")
    if ray.is_initialized():
        _configure_ray_data()
        return address or "this process's Ray"
    _check_reachable(address)
    printed: list[str] = []
    try:
        with _stderr_to_debug_log(printed):  # what ray.init prints (its log level, addresses) is not news
            ray.init(
                _init_address(address),
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
                logging_level=logging.ERROR,
            )
        _configure_ray_data()
    except ray.exceptions.AuthenticationError:
        raise UserError(_token_help(address)) from None
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as error:
        if any("Unauthenticated" in line or "InvalidAuthToken" in line for line in printed):
            raise UserError(_token_help(address)) from None
        cause = str(error).strip().splitlines()[0][:300] if str(error).strip() else type(error).__name__
        raise UserError(
            f"could not join the Ray cluster at {address or 'this machine'}: {cause}. {CONNECT_HELP}"
        ) from None
    return address or "a local Ray"


def _init_address(address: str) -> str | None:
    """What ray.init is given: None (RAY_ADDRESS, else a cluster `ray start` left on this machine, else a new one),
    or "local" where the cluster this machine records is gone (ray.init would wait on it for minutes)."""
    if address:
        return None
    record = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"
    recorded = record.read_text().strip() if record.is_file() else ""
    host, _, port = recorded.rpartition(":")
    if not recorded or not port.isdigit() or _unanswered(host, int(port), timeout=2.0) is None:
        return None
    log.info("the Ray cluster recorded on this machine (%s) is gone; starting one here", recorded)
    return "local"


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse at once an address where nothing listens: ray.init would otherwise retry for minutes, silently."""
    target = address.split("://", 1)[-1].rstrip("/")
    if not target or target in ("auto", "local"):
        return
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"RAY_ADDRESS={address} is not host:port or ray://host:port. {CONNECT_HELP}")
    if reason := _unanswered(host.strip("[]"), int(port), timeout):
        raise UserError(f"no Ray cluster answers at {address} ({reason}). {CONNECT_HELP}")


def _unanswered(host: str, port: int, timeout: float) -> str | None:
    """Why nothing accepts a TCP connection at host:port (None: something does)."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return error.strerror or type(error).__name__


def _token_help(address: str) -> str:
    given = (
        "the token given was refused"
        if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        else "it asks for a token"
    )
    return (
        f"the Ray cluster at {address or 'this machine'} uses token authentication and {given}: set RAY_AUTH_TOKEN "
        "to what `ray get-auth-token` prints on its head node (or RAY_AUTH_TOKEN_PATH to a file holding it)"
    )


@contextlib.contextmanager
def _stderr_to_debug_log(lines: list[str]):
    """Everything written to file descriptor 2 inside the block (Ray's C++ core writes there directly) goes to
    this module's debug log instead, and into `lines` for the caller to read after the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines.extend(captured.read().decode(errors="replace").splitlines())
            for line in lines:
                log.debug("ray: %s", line)


def _configure_ray_data() -> None:
    """Ray Data as this engine needs it: rows in input order, no progress bars of its own (the run shows one),
    nothing on the console (its session log file keeps it all; a failure is our one line), and Parquet read by the reader that
    lists files on the driver: the newer one lists them in a task that needs a whole CPU, which the scoring
    actors may all hold, and the run would wait forever."""
    from ray.data import DataContext

    context = DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    context.use_datasource_v2 = False
    for handler in logging.getLogger("ray.data").handlers:
        # Only Ray's console handler: a failure is our one `error:` line. (Other handlers can be listed here too,
        # such as pytest's capture: silencing them hid this process's own warnings.)
        if type(handler).__name__ == "PlainRayHandler":
            handler.setLevel(logging.CRITICAL)


@dataclass(frozen=True)
class PoolPlan:
    """The scoring actors: as many as the cluster has slots now (`actors`), more if nodes join later.

    Each CPU actor takes one CPU and runs its session on one thread (several one-thread sessions score
    more reviews a second than one session spread over the same cores); reads take no CPU of their own,
    so the actors can never starve them (on a 1-CPU cluster the read would otherwise wait forever).
    """

    actors: int
    nodes: int
    num_cpus: float
    num_gpus: float
    threads: int | None


def plan_pool(nodes: list[dict], provider: str) -> PoolPlan:
    """The pool for the alive nodes of `ray.nodes()`: one actor per CPU (per GPU for cuda/tensorrt) of each node."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    cpus = [int(r.get("CPU", 0)) for r in alive]
    gpus = [min(int(r.get("GPU", 0)), int(r.get("CPU", 0))) for r in alive]
    wants_gpu = provider in GPU_PROVIDERS or (provider == "auto" and sum(gpus) > 0)
    if wants_gpu:
        if not sum(gpus):
            raise UserError(
                f"--provider {provider} with --engine ray needs a node with a GPU and a CPU; the cluster has "
                f"{sum(int(r.get('GPU', 0)) for r in alive)} GPU(s)"
            )
        return PoolPlan(actors=sum(gpus), nodes=sum(1 for g in gpus if g), num_cpus=1, num_gpus=1, threads=None)
    if not sum(cpus):
        raise UserError(
            "the Ray cluster has no whole CPU to score on; start its nodes with --num-cpus 1 or more, or use --engine local"
        )
    return PoolPlan(actors=sum(cpus), nodes=sum(1 for c in cpus if c), num_cpus=1, num_gpus=0, threads=1)


def model_files(folder: Path) -> tuple[str, dict[str, bytes]]:
    """The exported folder's runtime files (manifest.json and the files it lists), checked, and their key."""
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    listed = manifest.get("files") or dict.fromkeys((manifest.get("model_file", MODEL_FILE), *RUNTIME_FILES[1:]))
    files = {name: (folder / name).read_bytes() for name in (MANIFEST, *listed)}
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()[:32], files


def cache_root() -> Path:
    return Path(tempfile.gettempdir()) / "review-sentiment-models"


def materialize(key: str, files: dict[str, bytes]) -> Path:
    """The model's folder on this node: written once per key (atomically, so actors starting together on one
    node never see half a folder) and reused; a copy that no longer matches its checksums is written again."""
    folder = cache_root() / key
    if (folder / MANIFEST).is_file():
        try:
            verify_files(folder, read_manifest(folder))
            return folder
        except UserError:
            log.warning("the cached model %s was changed on this node; writing it again", folder)
            shutil.rmtree(folder, ignore_errors=True)
    staging = folder.parent / f".{key}.{uuid.uuid4().hex}"
    for name, data in files.items():
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        (staging / name).write_bytes(data)
    try:
        staging.rename(folder)
    except OSError:  # another actor on this node finished first: its copy is the same files
        shutil.rmtree(staging, ignore_errors=True)
    return folder
