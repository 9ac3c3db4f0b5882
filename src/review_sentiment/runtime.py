"""The ONNX Runtime side shared by the batch scorer, the app and export's checks.

Imports neither torch nor transformers: an exported folder (model.onnx, tokenizer.json,
manifest.json) is all it needs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
import onnxruntime as ort

from .errors import UserError
from .metrics import predicted_classes, probabilities
from .text import ReviewEncoder, TextSpec, clean_text, pad_batch

log = logging.getLogger(__name__)

Provider = Literal["auto", "cuda", "tensorrt", "cpu"]
PROVIDERS: tuple[str, ...] = ("auto", "cuda", "tensorrt", "cpu")
_ORT_NAMES = {"cuda": "CUDAExecutionProvider", "tensorrt": "TensorrtExecutionProvider", "cpu": "CPUExecutionProvider"}
DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
# Every file the runtime reads besides the manifest; each one's sha256 is in the manifest.
RUNTIME_FILES = (MODEL_FILE, "tokenizer.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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


@dataclass(frozen=True)
class Prediction:
    """One review's result: label, probability of positive, and confidence in the label."""

    label: str
    score: float
    confidence: float


def iter_windows(items: Iterable, size: int) -> Iterator[list]:
    window: list = []
    for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def resolve_model_folder(model: str | Path | None) -> Path:
    """None → the bundled default model; a folder → itself; otherwise a Hub model id, downloaded."""
    if model is None:
        if not (DEFAULT_MODEL_DIR / MANIFEST).exists():
            raise UserError(f"no default model is bundled at {DEFAULT_MODEL_DIR}; pass --model FOLDER")
        return DEFAULT_MODEL_DIR
    path = Path(model)
    if path.exists():
        return path
    if str(model).count("/") != 1 or str(model).startswith((".", "/")):
        raise UserError(f"model folder not found: {model}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model)))
    except Exception as error:
        raise UserError(
            f"{model} is not a local folder and could not be downloaded from the Hugging Face "
            f"Hub ({type(error).__name__}); pass an exported folder instead"
        ) from error


# What every exported folder's manifest.json holds: key -> type (and allowed values where fixed).
MANIFEST_SCHEMA: dict[str, type | tuple] = {
    "format": str,
    "format_version": int,
    "labels": list,
    "text_spec": dict,
    "base_model": str,
    "quantization": ("none", "int8", "fp16"),
    "optimization": ("none", "O1", "O2", "O3"),
    "opset": int,
    "onnxruntime_version": str,
    "package_version": str,
    "validation_metrics": dict,
    "data": dict,
    "model_file": str,
    "sha256": str,
    "created": str,
}


def validate_manifest(manifest: dict, where: str = MANIFEST) -> dict:
    """Raise a UserError naming every missing or mistyped key; return the manifest unchanged."""
    problems = []
    for key, expected in MANIFEST_SCHEMA.items():
        if key not in manifest:
            problems.append(f"{key} missing")
        elif isinstance(expected, tuple) and manifest[key] not in expected:
            problems.append(f"{key} is {manifest[key]!r}, not one of {', '.join(expected)}")
        elif isinstance(expected, type) and not isinstance(manifest[key], expected):
            problems.append(f"{key} is not a {expected.__name__}")
    spec = manifest.get("text_spec", {})
    if isinstance(spec, dict) and not {"max_length", "truncation"} <= spec.keys():
        problems.append("text_spec needs max_length and truncation")
    if problems:
        raise UserError(f"{where} is not a valid export manifest: {'; '.join(problems)}")
    return manifest


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder} is not an exported model folder (no {MANIFEST}); make one with `sentiment export`")
    try:
        return validate_manifest(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error


def verify_files(folder: Path, manifest: dict) -> None:
    """Every file the runtime reads must match the sha256 the export wrote (a swapped tokenizer.json
    would change every prediction without a word)."""
    expected = manifest.get("files") or {manifest.get("model_file", MODEL_FILE): manifest.get("sha256")}
    if "files" not in manifest:
        log.warning("%s predates per-file checksums: only %s is verified; export it again", folder, MODEL_FILE)
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} is missing from the exported folder")
        if sha256_of(path) != digest:
            raise UserError(
                f"{path} does not match the sha256 in {MANIFEST}: the file is corrupted or "
                "was changed after export; export it again"
            )


class Scorer:
    """An exported model on an ONNX Runtime session: texts in, predictions out, in input order."""

    def __init__(self, folder: Path, session: ort.InferenceSession, encoder: ReviewEncoder, manifest: dict) -> None:
        self.folder = folder
        self.session = session
        self.encoder = encoder
        self.manifest = manifest
        self.labels = encoder.spec.labels
        self.input_names = [i.name for i in session.get_inputs()]
        self.use_io_binding = session.get_providers()[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        provider: str = "auto",
        threads: int | None = None,
        verify_checksum: bool = True,
    ) -> Scorer:
        folder = resolve_model_folder(model)
        manifest = read_manifest(folder)
        model_path = folder / manifest.get("model_file", MODEL_FILE)
        if not model_path.is_file():
            raise UserError(f"{model_path} is missing from the exported folder")
        if verify_checksum:
            verify_files(folder, manifest)
        spec = TextSpec.from_dict(manifest["text_spec"])
        try:
            encoder = ReviewEncoder.from_file(folder / "tokenizer.json", spec)
        except Exception as error:  # the tokenizers library raises a bare Exception on a bad file
            raise UserError(f"could not read {folder / 'tokenizer.json'}: {str(error).splitlines()[0]}") from error
        session = create_session(model_path, provider, threads, manifest.get("quantization", "none"))
        scorer = cls(folder, session, encoder, manifest)
        log.info("model %s (%s) on %s", folder, manifest.get("quantization", "none"), scorer.provider)
        return scorer

    @property
    def provider(self) -> str:
        """The execution provider that really runs the graph (first of the session's list)."""
        return self.session.get_providers()[0]

    def run_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for one batch of token ids, padded to its longest member."""
        padded, mask = pad_batch(ids, self.encoder.pad_id)
        arrays = {"input_ids": np.asarray(padded, dtype=np.int64), "attention_mask": np.asarray(mask, dtype=np.int64)}
        arrays["token_type_ids"] = np.zeros_like(arrays["input_ids"])
        feed = {name: arrays[name] for name in self.input_names}
        if self.use_io_binding:
            binding = self.session.io_binding()
            for name, array in feed.items():
                binding.bind_cpu_input(name, array)
            binding.bind_output("logits")
            self.session.run_with_iobinding(binding)
            return binding.copy_outputs_to_cpu()[0].astype(np.float32)
        return self.session.run(["logits"], feed)[0].astype(np.float32)

    def iter_logits(
        self, texts: Iterable[str], batch_size: int = 32, window: int | None = None, *, cleaned: bool = False
    ) -> Iterator[np.ndarray]:
        """Logits row by row in input order; at most `window` texts are held at once.

        Texts are cleaned here unless the caller already did (`cleaned=True`: training data, the
        explainer, the batch scorer), so each text is cleaned once. Inside each window the texts are
        sorted by token length, so each batch pads little.
        """
        for chunk in iter_windows(texts, window or batch_size * 16):
            ids = self.encoder.encode(chunk if cleaned else [clean_text(t) for t in chunk])
            order = np.argsort([-len(s) for s in ids], kind="stable")
            out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
            for start in range(0, len(ids), batch_size):
                index = order[start : start + batch_size]
                out[index] = self.run_ids([ids[i] for i in index])
            yield from out

    def logits(self, texts: Sequence[str], batch_size: int = 32, *, cleaned: bool = False) -> np.ndarray:
        rows = list(self.iter_logits(texts, batch_size, cleaned=cleaned))
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def iter_predict(
        self, texts: Iterable[str], batch_size: int = 32, window: int | None = None
    ) -> Iterator[Prediction]:
        for row in self.iter_logits(texts, batch_size, window):
            yield self.to_prediction(row)

    def to_prediction(self, logits_row: np.ndarray) -> Prediction:
        probs = probabilities(logits_row[None, :])[0]
        best = int(predicted_classes(probs))
        return Prediction(self.labels[best], float(probs[1]), float(probs[best]))

    @overload
    def predict(self, texts: str, batch_size: int = 32) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]: ...

    def predict(self, texts, batch_size=32):
        """Predictions for a text or a list of texts, answered in kind."""
        if isinstance(texts, str):
            return next(self.iter_predict([texts], batch_size))
        return list(self.iter_predict(texts, batch_size))
