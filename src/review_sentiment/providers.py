"""ONNX Runtime sessions: which execution providers to ask for, and which one really runs.

onnxruntime is imported inside the functions that need it, so the command-line parsers that list
PROVIDERS build without it.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import UserError

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

Provider = Literal["auto", "cuda", "tensorrt", "cpu"]
PROVIDERS: tuple[str, ...] = ("auto", "cuda", "tensorrt", "cpu")
_ORT_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}


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


def _wanted_providers(provider: str, quantization: str) -> list[str]:
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
    name = _ORT_NAMES[provider]
    if name not in available:
        raise UserError(
            f"--provider {provider}: this onnxruntime build has no {name} (it offers "
            f"{', '.join(available)}); install onnxruntime-gpu on Linux x86_64 for CUDA"
        )
    chain = ["TensorrtExecutionProvider", "CUDAExecutionProvider"] if provider == "tensorrt" else [name]
    return [p for p in chain if p in available] + ["CPUExecutionProvider"]


def create_session(
    model_path: Path, provider: str = "auto", threads: int | None = None, quantization: str = "none"
) -> ort.InferenceSession:
    """The one place an ONNX Runtime session is made: explicit providers, checked after creation.

    `get_available_providers()` lists CUDA on any onnxruntime-gpu install, GPU or not, and a CUDA
    provider that fails to start falls back to CPU with only a log line; so what counts is
    `session.get_providers()`. An explicit cuda/tensorrt request that did not get it is an error;
    `auto` falls back to CPU with one warning.
    """
    import onnxruntime as ort

    if provider not in PROVIDERS:
        raise UserError(f"provider must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    wanted = _wanted_providers(provider, quantization)
    if "CUDAExecutionProvider" in wanted and hasattr(ort, "preload_dlls"):
        try:  # finds CUDA and cuDNN installed from pip (the [cuda] extra) before the session loads them
            ort.preload_dlls()
        except Exception as error:
            log.debug("onnxruntime.preload_dlls() failed: %s", error)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(model_path), sess_options=options, providers=wanted)
    except Exception as error:
        raise UserError(f"could not load {model_path} into ONNX Runtime: {str(error).splitlines()[0]}") from error
    got = session.get_providers()
    if provider in ("cuda", "tensorrt") and _ORT_NAMES[provider] not in got:
        raise UserError(
            f"--provider {provider} asked for {_ORT_NAMES[provider]} but the session got "
            f"{', '.join(got)} (no usable GPU, or CUDA/cuDNN libraries missing)"
        )
    if provider == "auto" and "CUDAExecutionProvider" in wanted and "CUDAExecutionProvider" not in got:
        log.warning("CUDA is listed by onnxruntime but could not be used here; running on CPU")
    if quantization == "int8" and "CUDAExecutionProvider" in got:
        log.warning("this is an int8 model: ONNX Runtime runs int8 on CPU; export fp32 or fp16 for GPU serving")
    if quantization == "fp16" and got[0] == "CPUExecutionProvider":
        log.warning("this is an fp16 model, meant for GPU: on CPU it is slow; export int8 for CPU serving")
    return session
