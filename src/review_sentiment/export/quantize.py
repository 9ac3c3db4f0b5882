"""int8 quantization with ONNX Runtime's tools: static (calibrated, the default) or dynamic.

Static int8 fixes every activation's scale from calibration reviews, so a review's score does not depend
on the batch it is scored in (its neighbours, their padding, the batch size). Dynamic int8 computes
activation scales per call, over the whole batch: the same review can score differently in another batch.

Graphs fused by the transformer optimizer (O2/O3) hold ONNX Runtime's own ops, whose outputs ONNX shape
inference cannot type: `typed_graph` types them with ONNX Runtime's symbolic shape inference first (an
untyped tensor is silently left in float), and `DefaultTensorType` keeps the quantizer from stopping on any
it still meets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
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


def typed_graph(source: Path, out: Path) -> Path:
    """`source`, or a copy of it at `out` with every tensor typed when it holds ONNX Runtime's fused ops
    (MultiHeadAttention, SkipLayerNormalization...). ONNX's own shape inference cannot type their outputs,
    and the static quantizer silently leaves a tensor it cannot type in float: a fused graph came out with
    int8 weights but float activations, slower than fp32."""
    import onnx
    from onnxruntime.tools.symbolic_shape_infer import SymbolicShapeInference

    model = onnx.load(source)
    if not any(node.domain == "com.microsoft" for node in model.graph.node):
        return source
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))
    onnx.save(SymbolicShapeInference.infer_shapes(model, auto_merge=True), out)
    return out


def float_matmuls(model_file: Path) -> list[str]:
    """Weight MatMuls a quantized graph still computes in float: QOperator leaves them as MatMuls of a
    float weight, QDQ as MatMuls whose activation comes in without a DequantizeLinear."""
    import onnx

    graph = onnx.load(model_file, load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    dequantized = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul"
        and (n.input[1] in weights or (n.input[1] in dequantized and n.input[0] not in dequantized))
    ]


def _activation_matmuls(model_file: Path) -> list[str]:
    """The MatMuls of two activations (attention's Q·Kᵀ and probabilities·V): the static quantizer ignores
    MatMulConstBOnly, and int8 there would quantize attention probabilities to one fixed scale."""
    import onnx

    graph = onnx.load(model_file, load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    return [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] not in weights]


def _float_outputs(fmt: Int8Format) -> dict:
    """QDQ: leave each MatMul's output in float. ONNX Runtime then runs DQ→MatMul as MatMulIntegerToFloat,
    the fused kernel dynamic int8 uses, with the calibrated (fixed) input scale; a Q after the MatMul would
    make it QLinearMatMul, which requantizes the output only for the next DequantizeLinear to undo it."""
    return {"OpTypesToExcludeOutputQuantization": ["MatMul"]} if fmt == "qdq" else {}


# Calibration reviews the quantizer holds at once (its strides): a histogram method keeps every activation of
# every review it has read until it builds its histograms, and 256 reviews at 256 tokens took 20 GB.
CALIBRATION_STRIDE = 16


class _Calibration:
    """Calibration reviews one at a time, in strides the quantizer asks for with `set_range`. MinMax needs no
    padding (pad positions never widen a range); the histogram methods stack every feed, so there each
    review is padded (masked) to one common length."""

    def __init__(
        self, ids: Sequence[Sequence[int]], input_names: Sequence[str], pad_to: int | None, pad_id: int
    ) -> None:
        self.ids, self.input_names, self.pad_to, self.pad_id = ids, set(input_names), pad_to, pad_id
        self._rows: Iterator[dict] | None = None
        self._range = (0, len(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range, self._rows = (start_index, end_index), None

    def _feeds(self) -> Iterator[dict]:
        for row in self.ids[slice(*self._range)]:
            width = self.pad_to or len(row)
            ids = np.full((1, width), self.pad_id, dtype=np.int64)
            ids[0, : len(row)] = row
            mask = np.zeros((1, width), dtype=np.int64)
            mask[0, : len(row)] = 1
            arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            yield {name: array for name, array in arrays.items() if name in self.input_names}

    def get_next(self) -> dict | None:
        if self._rows is None:
            self._rows = self._feeds()
        return next(self._rows, None)

    def rewind(self) -> None:
        self._rows = None


def _strides(reviews: int) -> dict:
    """The quantizer's option to read calibration reviews in strides, each merged into the ranges (the same
    MinMax ranges as one pass) or histograms so far, so memory stays bounded; a stride divides the count."""
    stride = max(d for d in range(1, min(CALIBRATION_STRIDE, reviews) + 1) if reviews % d == 0)
    return {"CalibStridedMinMax": stride}


def quantize_static_int8(
    folder: Path,
    target: str,
    per_channel: bool,
    out: Path,
    calibration_ids: Sequence[Sequence[int]],
    fmt: Int8Format = "qdq",
    method: Calibration = "minmax",
    pad_id: int = 0,
) -> Path:
    """The weight MatMuls and the embedding tables int8, their inputs int8 with scales fixed by
    `calibration_ids`; the attention products of two activations stay float."""
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    out.mkdir(parents=True, exist_ok=True)
    source = typed_graph(folder / MODEL_FILE, out / "typed.onnx")
    names = [i.name for i in ort.InferenceSession(str(source), providers=["CPUExecutionProvider"]).get_inputs()]
    activation_products = _activation_matmuls(source)
    pad_to = None if method == "minmax" else max(len(row) for row in calibration_ids)
    reader = type("Reader", (_Calibration, CalibrationDataReader), {})(calibration_ids, names, pad_to, pad_id)
    quantize_static(
        source,
        out / MODEL_FILE,
        reader,
        quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
        op_types_to_quantize=["MatMul", "Gather"],  # Gather: the embedding tables, most of a small model
        nodes_to_exclude=activation_products,
        per_channel=per_channel,
        reduce_range=target in REDUCED_RANGE_TARGETS,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method={
            "minmax": CalibrationMethod.MinMax,
            "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile,
        }[method],
        extra_options={**_options(), "MatMulConstBOnly": True, **_float_outputs(fmt), **_strides(len(calibration_ids))},
    )
    if source != folder / MODEL_FILE:
        source.unlink()  # the typed copy
    left = float_matmuls(out / MODEL_FILE)
    if left:  # a quantizer that skipped them would ship a model slower than fp32, and say int8
        named = ", ".join(n or "(unnamed)" for n in left[:3]) + (", ..." if len(left) > 3 else "")
        raise UserError(
            f"static int8 left {len(left)} weight MatMuls of this graph in float ({named}): the model would run "
            "slower than fp32. Export without --optimize, or with --int8-mode dynamic"
        )
    log.info("static int8 (%s, %s calibration on %d reviews)", fmt, method, len(calibration_ids))
    return out / MODEL_FILE
