"""What an export is asked to do: one typed config, validated, from which `sentiment export`'s options are made."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..errors import UserError
from ..text import LENGTHS

Quantize = Literal["none", "int8", "fp16"]
Int8Target = Literal["auto", "avx512_vnni", "avx512", "avx2", "arm64"]
Int8Mode = Literal["static", "dynamic"]
Int8Format = Literal["qdq", "qoperator"]
Calibration = Literal["minmax", "entropy", "percentile"]


@dataclass
class ExportConfig:
    model: Path | None = field(
        default=None, metadata={"help": "merged model folder or LoRA adapter folder written by `sentiment train`"}
    )
    output: Path = field(
        default=Path("models/sentiment-onnx"), metadata={"help": "folder to write the exported model to"}
    )
    quantize: Quantize = field(
        default="none",
        metadata={
            "help": "int8: for CPU serving (ONNX Runtime runs int8 on CPU only); fp16: half precision for GPU serving"
        },
    )
    int8_mode: Int8Mode = field(
        default="static",
        metadata={
            "help": "static: activation scales calibrated once on training reviews, so a review scores the same in "
            "any batch; dynamic: scales per call over the whole batch (no calibration data needed)"
        },
    )
    int8_format: Int8Format = field(
        default="qdq", metadata={"help": "static int8 graph format: QDQ (fused by ONNX Runtime) or QOperator"}
    )
    calibration_samples: int = field(
        default=256, metadata={"help": "training reviews that calibrate static int8 (never validation reviews)"}
    )
    calibration_method: Calibration = field(
        default="minmax", metadata={"help": "how static int8 ranges are set from the calibration activations"}
    )
    optimize: Literal["none", "O1", "O2", "O3"] = field(
        default="none",
        metadata={"help": "ORTOptimizer level: O1 basic, O2 + transformer fusions, O3 + GELU approximation"},
    )
    int8_target: Int8Target = field(
        default="auto", metadata={"help": "int8 instruction set to tune for; auto reads this CPU"}
    )
    per_channel: bool = field(
        default=True, metadata={"help": "per-channel int8 weights (more accurate, slightly larger)"}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "tokens the exported model reads of each review (head+tail as in training); default: the "
            "training length. A model trained on 256 tokens may read more when served: BENCHMARKS.md "
            "'Reading window' measures what that gains and costs"
        },
    )
    opset: int | None = field(
        default=None, metadata={"help": "ONNX opset (default: Optimum's choice for the architecture)"}
    )
    validation_samples: int = field(
        default=500,
        metadata={
            "help": "validation reviews to measure accuracy on, re-created from the training manifest when its data is here; 0 to skip"
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output folder"})

    def __post_init__(self) -> None:
        if self.model is None:
            raise UserError("export needs a MODEL folder (a merged model or a LoRA adapter), or --check FOLDER")
        self.model, self.output = Path(self.model), Path(self.output)
        if self.validation_samples < 0:
            raise UserError("--validation-samples must be 0 (skip) or more")
        if self.max_length is not None and self.max_length not in LENGTHS:
            raise UserError(f"--max-length must be between {LENGTHS.start} and {LENGTHS.stop - 1}")
        if self.calibration_samples < 1:
            raise UserError("--calibration-samples must be at least 1")
        if self.quantize == "fp16" and self.optimize == "none":
            self.optimize = "O2"  # ONNX Runtime's fp16 conversion runs inside its transformer optimizer
        if self.quantize == "fp16" and self.optimize == "O1":
            # O1 is ONNX Runtime's offline optimizer alone, which fp16 exports skip (it would tune the graph
            # for this machine's provider, not the GPU's): the fp16 graph would not be optimized at all.
            raise UserError("--quantize fp16 is fused with --optimize O2 (default) or O3, not O1")


def cpu_int8_target() -> str:
    """The best dynamic-int8 configuration for this CPU (VNNI dot products where present)."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"
