"""int8 quantization with ONNX Runtime's tools: static (calibrated, the default) or dynamic.

Static int8 fixes every activation's scale from calibration reviews, so a review's score does not depend
on the batch it is scored in (its neighbours, their padding, the batch size). Dynamic int8 computes
activation scales per call, over the whole batch: the same review can score differently in another batch.

Both pass `DefaultTensorType`: graphs fused by the transformer optimizer (O2/O3) hold contrib ops whose
outputs ONNX shape inference cannot type, and without a default type the quantizer stops on them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..manifest import MODEL_FILE
from .config import Calibration, Int8Format

log = logging.getLogger(__name__)

# u8 activations × s8 weights: the VNNI dot product. Without VNNI (plain AVX2/AVX512) the 16-bit
# intermediate sums of u8×s8 can saturate, which ONNX Runtime avoids with 7-bit weights (reduce_range).
REDUCED_RANGE_TARGETS = ("avx2", "avx512")


def _options() -> dict:
    import onnx

    return {"DefaultTensorType": onnx.TensorProto.FLOAT, "WeightSymmetric": True, "ActivationSymmetric": False}


def quantize_dynamic_int8(folder: Path, target: str, per_channel: bool, out: Path) -> Path:
    """Weights int8 ahead of time, activations quantized at run time with one scale per call."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(
        folder / MODEL_FILE,
        out / MODEL_FILE,
        per_channel=per_channel,
        reduce_range=target in REDUCED_RANGE_TARGETS,
        weight_type=QuantType.QInt8,
        extra_options={**_options(), "MatMulConstBOnly": True},
    )
    return out / MODEL_FILE


class _Calibration:
    """Calibration reviews one at a time (no padding, so pad positions never widen a range)."""

    def __init__(self, ids: Sequence[Sequence[int]], input_names: Sequence[str]) -> None:
        self.ids, self.input_names = ids, set(input_names)
        self._rows: Iterator[dict] | None = None

    def _feeds(self) -> Iterator[dict]:
        for row in self.ids:
            arrays = {
                "input_ids": np.asarray([row], dtype=np.int64),
                "attention_mask": np.ones((1, len(row)), dtype=np.int64),
                "token_type_ids": np.zeros((1, len(row)), dtype=np.int64),
            }
            yield {name: array for name, array in arrays.items() if name in self.input_names}

    def get_next(self) -> dict | None:
        if self._rows is None:
            self._rows = self._feeds()
        return next(self._rows, None)

    def rewind(self) -> None:
        self._rows = None


def quantize_static_int8(
    folder: Path,
    target: str,
    per_channel: bool,
    out: Path,
    calibration_ids: Sequence[Sequence[int]],
    fmt: Int8Format = "qdq",
    method: Calibration = "minmax",
) -> Path:
    """MatMul and embedding weights int8, their activations int8 with scales fixed by `calibration_ids`."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    source = folder / MODEL_FILE
    names = [i.name for i in ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()]
    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration_ids, names)
    out.mkdir(parents=True, exist_ok=True)
    quantize_static(
        source,
        out / MODEL_FILE,
        reader,
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=["MatMul", "Gather"],  # Gather: the embedding tables, most of a small model
        per_channel=per_channel,
        reduce_range=target in REDUCED_RANGE_TARGETS,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[method],
        extra_options={**_options(), "MatMulConstBOnly": True},
    )
    log.info("static int8 (%s, %s calibration on %d reviews)", fmt, method, len(calibration_ids))
    return out / MODEL_FILE
