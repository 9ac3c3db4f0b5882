"""`export(cfg) -> Path` and `check(folder)`: the export stage from end to end.

Export, optimize, quantize, verify against PyTorch, measure every variant on the same validation
reviews, and write a self-describing folder (model.onnx, tokenizer, manifest.json, README.md).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..calibration import calibrate
from ..card import write_model_card
from ..errors import UserError
from ..manifest import MODEL_FILE, TRAINING_MANIFEST
from ..scorer import Scorer
from ..text import ReviewEncoder
from .config import ExportConfig, cpu_int8_target
from .onnx import merged_folder, model_labels, onnx_export, optimize, stage_folder
from .quantize import quantize_dynamic_int8, quantize_static_int8
from .verify import (
    PROBES,
    calibration_reviews,
    card_section,
    check_fp16,
    format_table,
    measure,
    run_reviews,
    served_metrics,
    torch_reference_logits,
    validation_sample,
    warn_on_accuracy_drop,
)

log = logging.getLogger(__name__)


def export(cfg: ExportConfig) -> Path:
    """Export `cfg.model` to `cfg.output`, verified; the output appears only once everything passed."""
    if cfg.output.exists() and any(cfg.output.iterdir()) and not cfg.overwrite:
        raise UserError(f"output folder {cfg.output} already exists; pass --overwrite to replace it")
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cfg.output.parent, prefix=".export-") as tmp:
        scratch = Path(tmp)
        merged = merged_folder(cfg.model, scratch)
        training = _training_manifest(merged)
        # Loaded before any conversion, so missing calibration data fails in seconds, not after the export.
        split = run_reviews(training) if cfg.quantize == "int8" and cfg.int8_mode == "static" else None
        calibration = calibration_reviews(split[0], cfg.calibration_samples) if split else []
        # Checked before the conversion, which is the slow step: a wrong label order or length fails in seconds.
        spec = {**training["text_spec"], "labels": model_labels(merged, training)}
        spec["max_length"] = served_length(cfg, training, merged)
        raw_file = onnx_export(merged, scratch / "fp32", cfg.opset)
        manifest = _base_manifest(cfg, training, spec, raw_file)
        fp32_dir = stage_folder(raw_file, merged, scratch / "fp32", manifest)
        sample = validation_sample(training, cfg.validation_samples, split[1] if split else None)
        # Variants are compared on the validation sample (its texts are cleaned already), or on the
        # probes when the training data is not on this machine.
        texts, labels, cleaned = (sample[0], sample[1], True) if sample else (list(PROBES), None, False)
        fp32 = Scorer.load(fp32_dir, provider="cpu")
        parity = _check_parity(merged, fp32)
        fp32_logits = fp32.logits(texts, cleaned=cleaned)
        final_dir = _variant(cfg, merged, fp32_dir, scratch, manifest, (calibration, fp32.encoder))
        rows = [measure(fp32_dir, texts, labels, fp32_logits, cleaned)]
        if final_dir != fp32_dir:
            rows.append(measure(final_dir, texts, labels, fp32_logits, cleaned))
        print(format_table(rows))
        check_fp16(rows[-1])
        warn_on_accuracy_drop(rows, cfg)
        manifest.update(_calibration(final_dir, texts, labels, cleaned))
        _finish_folder(final_dir, merged, manifest, rows, training, labels, parity)
        if cfg.output.exists():
            shutil.rmtree(cfg.output)
        shutil.move(str(final_dir), cfg.output)
    log.info(
        "exported %s (%s, optimization %s) to %s",
        cfg.model,
        manifest["quantization"],
        manifest["optimization"],
        cfg.output,
    )
    return cfg.output


def _training_manifest(merged: Path) -> dict:
    path = merged / TRAINING_MANIFEST
    if not path.exists():
        raise UserError(f"{merged} has no {TRAINING_MANIFEST}: export models trained by `sentiment train`")
    return json.loads(path.read_text())


def _base_manifest(cfg: ExportConfig, training: dict, spec: dict, raw_file: Path) -> dict:
    """What the exported folder says of itself before any variant is made (fp32, not optimized): the text
    spec the scorer reads (the served length; labels naming the logits in order, also at the top level)."""
    import onnx
    import onnxruntime

    opset = next(
        o.version for o in onnx.load(raw_file, load_external_data=False).opset_import if o.domain in ("", "ai.onnx")
    )
    return {
        "format": "review-sentiment-onnx",
        "format_version": 1,
        "labels": spec["labels"],
        "text_spec": spec,
        "base_model": training["base_model"],
        "quantization": "none",
        "optimization": "none",
        "opset": opset,
        "onnxruntime_version": onnxruntime.__version__,
        "package_version": __version__,
        "data": training["data"],
        "training_metrics": training.get("metrics", {}),
        "validation_metrics": {},
        "training": training.get("training", {}),
        "hyperparameters": training.get("hyperparameters", {}),
        "source_model": str(cfg.model.resolve()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def served_length(cfg: ExportConfig, training: dict, merged: Path) -> int:
    """The tokens the export reads per review: --max-length, else the training length; never more than the
    model has positions for."""
    trained = int(training["text_spec"]["max_length"])
    if cfg.max_length is None or cfg.max_length == trained:
        return trained
    config = json.loads((merged / "config.json").read_text())
    positions = int(config.get("max_position_embeddings", cfg.max_length))
    if cfg.max_length > positions:
        raise UserError(f"--max-length {cfg.max_length} is more than the model's {positions} positions")
    log.info("the export reads %d tokens per review (trained on %d)", cfg.max_length, trained)
    return cfg.max_length


def _check_parity(merged: Path, fp32: Scorer) -> dict:
    """fp32 ONNX against the merged PyTorch model on the fixed probes; more than 1e-4 apart is a failed export.

    The fp32 probe logits are kept in the manifest: `--check` compares the served variant with them on a
    machine where the PyTorch model is not (the GPU box an fp16 export is served on).
    """
    torch_logits = torch_reference_logits(merged, fp32, list(PROBES))
    probe_logits = fp32.logits(list(PROBES))
    parity = float(np.abs(probe_logits - torch_logits).max())
    if parity > 1e-4:
        raise UserError(f"export failed verification: ONNX fp32 logits differ from PyTorch by {parity:.2e} (> 1e-4)")
    log.info("fp32 ONNX matches PyTorch: max |Δlogit| %.2e on %d probe reviews", parity, len(PROBES))
    return {
        "fp32_vs_pytorch_max_abs_logit_diff": parity,
        "fp32_vs_pytorch_provider": fp32.provider,
        "fp32_probe_logits": probe_logits.tolist(),
    }


def _variant(
    cfg: ExportConfig,
    merged: Path,
    fp32_dir: Path,
    scratch: Path,
    manifest: dict,
    calibration: tuple[list[str], ReviewEncoder],
) -> Path:
    """The folder of the variant asked for: optimized and/or quantized from fp32 (updates `manifest`)."""
    final_dir = fp32_dir
    if cfg.optimize != "none":
        optimize(final_dir, cfg.optimize, cfg.quantize == "fp16", scratch / "optimized", cfg.quantize == "int8")
        manifest.update(optimization=cfg.optimize, quantization="fp16" if cfg.quantize == "fp16" else "none")
        manifest["attention_mask"] = "raw"  # fused with the 0/1 mask (see `optimize`); the scorer checks for it
        final_dir = stage_folder(scratch / "optimized" / MODEL_FILE, merged, scratch / "optimized", manifest)
    if cfg.quantize == "int8":
        final_dir = _int8(cfg, merged, final_dir, scratch / "int8", manifest, calibration)
    return final_dir


def _int8(
    cfg: ExportConfig,
    merged: Path,
    source: Path,
    out: Path,
    manifest: dict,
    calibration: tuple[list[str], ReviewEncoder],
) -> Path:
    """The int8 variant of `source` (static: calibrated on training reviews, tokenized by the export's own
    encoder; dynamic: no calibration)."""
    target = cpu_int8_target() if cfg.int8_target == "auto" else cfg.int8_target
    details = {"mode": cfg.int8_mode, "target": target, "per_channel": cfg.per_channel}
    if cfg.int8_mode == "static":
        texts, encoder = calibration
        ids = encoder.encode(texts)
        quantize_static_int8(
            source, target, cfg.per_channel, out, ids, cfg.int8_format, cfg.calibration_method, encoder.pad_id
        )
        details.update(
            format=cfg.int8_format,
            calibration={"method": cfg.calibration_method, "reviews": len(ids), "from": "the training split"},
        )
    else:
        quantize_dynamic_int8(source, target, cfg.per_channel, out)
        details["format"] = "qoperator"
    manifest.update(quantization="int8", int8_target=target, per_channel=cfg.per_channel, int8=details)
    return stage_folder(out / MODEL_FILE, merged, out, manifest)


def _calibration(folder: Path, texts: list[str], labels, cleaned: bool) -> dict:
    """The served variant's temperature, fitted on its own validation logits (int8 logits are not fp32's)."""
    if labels is None:
        reason = "no validation reviews were measured at export (--validation-samples 0, or the data is not here)"
        log.warning("the model is not calibrated: %s", reason)
        return {"temperature": 1.0, "calibration": {"temperature": 1.0, "applied": False, "reason": reason}}
    scorer = Scorer.load(folder, provider="cpu", verify_checksum=False, calibrated=False)
    result = {**calibrate(scorer.logits(texts, cleaned=cleaned), labels), "provider": scorer.provider}
    if result["applied"]:
        log.info(
            "temperature %.3f: ECE %.4f → %.4f, Brier %.4f → %.4f (%s)",
            result["temperature"], result["ece_before"], result["ece"], result["brier_before"], result["brier"],
            result["measured_on"],
        )  # fmt: skip
    else:
        log.warning("confidence is not rescaled (temperature 1): %s", result["reason"])
    return {"temperature": result["temperature"], "calibration": result}


def _finish_folder(
    final_dir: Path, merged: Path, manifest: dict, rows: list[dict], training: dict, labels, parity: dict
) -> None:
    """The served variant's manifest (with the export check and its validation metrics) and model card."""
    manifest["export_check"] = {
        **parity,
        "variants": rows,
        "validation_sample": len(labels) if labels is not None else 0,
    }
    manifest["validation_metrics"] = served_metrics(rows[-1], training, labels)
    calibration = manifest.get("calibration", {})
    if calibration.get("applied"):
        manifest["validation_metrics"].update({k: calibration[k] for k in ("ece", "brier")})
    stage_folder(final_dir / MODEL_FILE, merged, final_dir, manifest)
    write_model_card(
        final_dir / "README.md", manifest, "onnx", manifest["validation_metrics"], card_section(manifest, rows)
    )


def check(folder: Path) -> dict:
    """Re-verify an exported folder: checksum, manifest, and agreement with its source PyTorch model, or,
    where that model is not on this machine, with the fp32 ONNX logits the export recorded."""
    scorer = Scorer.load(folder, provider="cpu", calibrated=False)
    manifest = scorer.manifest
    reference, against = _check_reference(folder, scorer)
    row = measure(folder, list(PROBES), None, reference)
    if reference is None:
        message = (
            "checked integrity and scoring only: the source model is not here and the export recorded no probe logits"
        )
        if manifest["quantization"] == "fp16":
            raise UserError(f"an fp16 export must be compared with fp32, but {message}; re-export it")
        log.warning(message)
    else:
        check_fp16(row)
        exact = manifest["quantization"] == "none" and manifest["optimization"] == "none"
        if exact and row["max_abs_logit_diff"] > 1e-4:
            raise UserError(
                f"check failed: ONNX logits differ from {against} by {row['max_abs_logit_diff']:.2e} (> 1e-4)"
            )
        log.info("compared with %s on %d probe reviews", against, len(PROBES))
    print(format_table([row]))
    return row


def _check_reference(folder: Path, scorer: Scorer) -> tuple[np.ndarray | None, str]:
    """What `check` compares with: the source PyTorch model when it is here, else the recorded fp32 logits."""
    source = Path(scorer.manifest.get("source_model", ""))
    if source.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=".check-"))
        try:
            return torch_reference_logits(merged_folder(source, scratch), scorer, list(PROBES)), str(source)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    recorded = scorer.manifest.get("export_check", {}).get("fp32_probe_logits")
    if recorded is not None and len(recorded) == len(PROBES):
        return np.asarray(recorded, dtype=np.float32), "the fp32 ONNX logits recorded at export"
    return None, ""
