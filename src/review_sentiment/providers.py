"""ONNX Runtime sessions: which execution providers to ask for, and which one really runs.

onnxruntime is imported inside the functions that need it, so the command-line parsers that list
PROVIDERS build without it.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import UserError

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

Provider = Literal["auto", "cuda", "tensorrt", "cpu"]
PROVIDERS: tuple[str, ...] = ("auto", "cuda", "tensorrt", "cpu")
_ORT_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}

# How a scorer groups reviews into ONNX Runtime calls when its caller names no batch size, by the provider that
# really runs. On CPU: calls of at most CPU_TOKENS_PER_CALL padded tokens (a long review alone, short ones many
# together), as many at once as there are cores, each on one thread. Attention's float work grows with the
# padded length, a large batch outgrows the caches, and a small call does not split well over threads
# (BENCHMARKS.md, "Scoring throughput" and "Where the time goes"). A GPU wants large batches, one at a time.
# A review's score does not depend on its batch either way.
CPU_TOKENS_PER_CALL = 512
GPU_BATCH_SIZE = 32

# ONNX Runtime graph fusions a CPU-only session leaves out: on an int8 (QDQ) graph their fused kernels take longer
# than the plain operators they replace (SkipLayerNormalization for Add + LayerNormalization, BiasGelu for
# Add + Gelu); BENCHMARKS.md, "Scoring throughput", times the int8 scorer both ways. A float rounding there can
# move an activation across an int8 step, so scores differ slightly from the same int8 model in a session with
# every fusion (and a review near the threshold can change label); never between our own sessions, which all
# leave them out on CPU. fp32 graphs give the same scores either way. GPU sessions keep every fusion; an int8
# export with --optimize O2/O3 is written without them (export.onnx.optimize).
CPU_SLOWER_FUSIONS = ("SkipLayerNormFusion", "BiasGeluFusion")


@dataclass(frozen=True)
class Batching:
    """How many reviews an ONNX Runtime call carries (`rows`, or as many as fit `tokens` padded tokens, at
    least one) and how many calls run at once (`concurrent`, each on one CPU thread)."""

    rows: int | None = None
    tokens: int | None = None
    concurrent: int = 1

    def describe(self) -> str:
        size = f"{self.rows} review{'s' if self.rows > 1 else ''}" if self.rows else f"up to {self.tokens} tokens"
        return f"{size} a call" + (
            f", {self.concurrent} calls at once on one thread each" if self.concurrent > 1 else ""
        )


def default_batching(running_provider: str, batch_size: int | None = None, threads: int | None = None) -> Batching:
    """The batching for the provider that really runs a session (its first); `batch_size` fixes the rows a call,
    `threads` the CPU threads (default: every CPU this process may use)."""
    if running_provider != "CPUExecutionProvider":
        return Batching(rows=batch_size or GPU_BATCH_SIZE)
    concurrent = threads or available_cpus()
    return (
        Batching(rows=batch_size, concurrent=concurrent)
        if batch_size
        else Batching(None, CPU_TOKENS_PER_CALL, concurrent)
    )


def available_cpus(root: Path = Path("/")) -> int:
    """The CPUs this process may use: its affinity, bounded by a cgroup v2 CPU quota (a container limited to
    2 CPUs on a 64-core host has 64 in its affinity)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        quota, period = (root / "sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return cpus
    if quota == "max":
        return cpus
    return max(1, min(cpus, math.ceil(int(quota) / int(period))))


def may_have_nvidia_gpu(root: Path = Path("/")) -> bool:
    """False only where it is known: on Linux, no NVIDIA driver lists a GPU. Elsewhere the session tries.

    The driver lists GPUs under /proc/driver/nvidia/gpus; WSL 2 has no such folder but a /dev/dxg
    device, and some containers only the /dev/nvidia* device nodes.
    """
    if not sys.platform.startswith("linux"):
        return True
    gpus = root / "proc/driver/nvidia/gpus"
    if gpus.is_dir() and any(gpus.iterdir()):
        return True
    return (root / "dev/dxg").exists() or (root / "dev/nvidia0").exists()


def _wanted_providers(provider: str, quantization: str, optimization: str = "none") -> list[str]:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if provider == "auto" and not may_have_nvidia_gpu():
        # onnxruntime-gpu lists CUDA on any machine; trying it without a GPU only prints load errors.
        log.debug("no NVIDIA GPU found: using the CPU provider")
        return ["CPUExecutionProvider"]
    if provider == "cpu" or (provider == "auto" and quantization == "int8"):
        # int8 graphs run their integer kernels on CPU only; on CUDA most nodes would fall back anyway.
        return ["CPUExecutionProvider"]
    if provider == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    if provider == "tensorrt":
        _check_tensorrt_graph(quantization, optimization)
    name = _ORT_NAMES[provider]
    if name not in available:
        raise UserError(
            f"--provider {provider}: this onnxruntime build has no {name} (it offers "
            f"{', '.join(available)}); install onnxruntime-gpu on Linux x86_64 for CUDA"
        )
    chain = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if provider == "tensorrt" else [name]
    return [p for p in chain if p in available] + ["CPUExecutionProvider"]


def _check_tensorrt_graph(quantization: str, optimization: str) -> None:
    """TensorRT parses standard ONNX only and builds its own fused fp16 engine: it wants the fp32 export
    with no transformer fusions (O2/O3 and fp16 exports carry ONNX Runtime's com.microsoft operators)."""
    plain = "export the model with --quantize none --optimize none (TensorRT builds its own fp16 engine from it)"
    if quantization == "int8":
        raise UserError(f"--provider tensorrt cannot run this int8 model (ONNX Runtime runs int8 on CPU): {plain}")
    if quantization == "fp16" or optimization not in ("none", "O1"):
        raise UserError(
            f"--provider tensorrt cannot parse this {quantization if quantization != 'none' else 'fp32'} export "
            f"(--optimize {optimization}): its fused com.microsoft operators are not standard ONNX; {plain}"
        )


@dataclass(frozen=True)
class SessionPlan:
    """What a session is built for: the graph's kind (from its manifest) and the largest batch it will see.

    TensorRT builds an engine per input shape unless told the range up front; `max_batch` and
    `max_length` give that range (1×1 to max_batch×max_length), and `model_id` keys its engine cache.
    """

    quantization: str = "none"
    optimization: str = "none"
    max_batch: int = 64
    max_length: int = 512
    model_id: str = "model"

    @classmethod
    def from_manifest(cls, manifest: dict, max_batch: int = 64) -> SessionPlan:
        return cls(
            quantization=manifest.get("quantization", "none"),
            optimization=manifest.get("optimization", "none"),
            max_batch=max_batch,
            max_length=int(manifest.get("text_spec", {}).get("max_length", 512)),
            model_id=str(manifest.get("sha256", "model"))[:16],
        )


def create_session(
    model_path: Path,
    provider: str = "auto",
    threads: int | None = None,
    plan: SessionPlan | None = None,
    profile_prefix: Path | None = None,
) -> ort.InferenceSession:
    """The one place an ONNX Runtime session is made: explicit providers, checked after creation.
    `profile_prefix` turns on ONNX Runtime's profiler (benchmarks/profile_scoring.py), writing there.

    `get_available_providers()` lists CUDA on any onnxruntime-gpu install, GPU or not, and a CUDA
    provider that fails to start falls back to CPU with only a log line; so what counts is
    `session.get_providers()`. An explicit cuda/tensorrt request that did not get it is an error;
    `auto` falls back to CPU with one warning.
    """
    import onnxruntime as ort

    plan = plan or SessionPlan()
    if provider not in PROVIDERS:
        raise UserError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    wanted = _wanted_providers(provider, plan.quantization, plan.optimization)
    preload_report = _preload_cuda_libraries(ort) if "CUDAExecutionProvider" in wanted else ""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if profile_prefix is not None:
        options.enable_profiling = True
        options.profile_file_prefix = str(profile_prefix)
    chain = [(name, _provider_options(name, model_path, plan)) for name in wanted]
    session = _open(model_path, options, chain)
    _check_providers(session.get_providers(), provider, wanted, plan, preload_report)
    if len(chain) > 1 and session.get_providers() == ["CPUExecutionProvider"]:
        # `auto` fell back from CUDA: the session the CPU runs is the CPU-only one, as for the scorer's other session
        session = _open(model_path, options, [("CPUExecutionProvider", {})])
    return session


def _open(model_path: Path, options: ort.SessionOptions, chain: list[tuple[str, dict]]) -> ort.InferenceSession:
    """A session on `chain`; a CPU-only one without CPU_SLOWER_FUSIONS."""
    import onnxruntime as ort

    cpu_only = [name for name, _ in chain] == ["CPUExecutionProvider"]
    disabled = list(CPU_SLOWER_FUSIONS) if cpu_only else []
    try:
        return ort.InferenceSession(
            str(model_path), sess_options=options, providers=chain, disabled_optimizers=disabled
        )
    except Exception as error:
        raise UserError(f"could not load {model_path} into ONNX Runtime: {str(error).splitlines()[0]}") from error


def _preload_cuda_libraries(ort) -> str:
    """Load CUDA and cuDNN installed from pip (the [gpu] extra) before the session needs them.

    `preload_dlls()` reports a missing library with print(), not an exception: what it printed is
    returned so that a failed CUDA session can say why.
    """
    if not hasattr(ort, "preload_dlls"):
        return ""
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
            ort.preload_dlls()
    except Exception as error:
        printed.write(f"{error}\n")
    return " ".join(line.strip() for line in printed.getvalue().splitlines() if line.strip())


def _provider_options(name: str, model_path: Path, plan: SessionPlan) -> dict[str, str]:
    if name == "CUDAExecutionProvider":
        # ONNX Runtime's CUDA provider rounds fp32 matrix products to TF32 by default on Ampere and later:
        # off, so an fp32 model on GPU computes the fp32 that export verified on CPU.
        return {"use_tf32": "0"}
    if name == "TensorrtExecutionProvider":
        return tensorrt_options(model_path, plan)
    return {}


def tensorrt_options(model_path: Path, plan: SessionPlan, cache_root: Path | None = None) -> dict[str, str]:
    """Engine and timing caches keyed by the model's checksum, an fp16 engine, and one optimization profile
    covering every batch shape the scorer makes (1×1 up to max_batch×max_length), so no shape rebuilds it."""
    root = cache_root or Path(
        os.environ.get("SENTIMENT_TENSORRT_CACHE", Path.home() / ".cache/review-sentiment/tensorrt")
    )
    cache = root / plan.model_id
    cache.mkdir(parents=True, exist_ok=True)
    names = graph_input_names(model_path)

    def shapes(batch: int, length: int) -> str:
        return ",".join(f"{name}:{batch}x{length}" for name in names)

    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(cache),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(cache),
        "trt_fp16_enable": "True",
        "trt_profile_min_shapes": shapes(1, 1),
        "trt_profile_opt_shapes": shapes(plan.max_batch, plan.max_length),
        "trt_profile_max_shapes": shapes(plan.max_batch, plan.max_length),
    }


def graph_input_names(model_path: Path) -> list[str]:
    """The graph's input names, read by a CPU session that optimizes nothing (onnx is not a serving dependency)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return [i.name for i in session.get_inputs()]


def _check_providers(got: list[str], provider: str, wanted: list[str], plan: SessionPlan, preload: str) -> None:
    """Say which provider really runs, and refuse an explicit GPU request that did not get its GPU."""
    cause = f"; onnxruntime.preload_dlls() said: {preload}" if preload else " (no usable GPU, or CUDA/cuDNN missing)"
    if provider == "tensorrt":
        cause += (
            "; TensorRT needs the TensorRT 10 libraries (libnvinfer.so.10, libnvinfer_plugin.so.10, "
            "libnvonnxparser.so.10) on LD_LIBRARY_PATH: see README, 'ONNX Runtime providers'"
        )
    if provider in ("cuda", "tensorrt") and _ORT_NAMES[provider] not in got:
        raise UserError(
            f"--provider {provider} asked for {_ORT_NAMES[provider]} but the session got {', '.join(got)}{cause}"
        )
    if provider == "auto" and "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in got:
        log.warning("CUDA is listed by onnxruntime but could not be used here%s; running on CPU", cause)
    if plan.quantization == "int8" and "CUDAExecutionProvider" in got:
        log.warning("this is an int8 model: ONNX Runtime runs int8 on CPU; export fp32 or fp16 for GPU serving")
    if plan.quantization == "fp16" and got[0] == "CPUExecutionProvider":
        log.warning("this is an fp16 model, meant for GPU: on CPU it is slow; export int8 for CPU serving")
    if got[0] == "TensorrtExecutionProvider":
        log.info(
            "TensorRT builds an fp16 engine for batches up to %dx%d tokens (cached)", plan.max_batch, plan.max_length
        )
