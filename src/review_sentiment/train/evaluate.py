"""`sentiment evaluate`: score labelled reviews with a trained or exported model; write metrics and plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..manifest import DEFAULT_MODEL_DIR, MANIFEST, TRAINING_MANIFEST
from ..scoring import probabilities
from .config import EvaluateConfig
from .data import Reviews, load_reviews, validation_split
from .report import write_report

log = logging.getLogger(__name__)


def evaluate(cfg: EvaluateConfig) -> dict:
    """Accuracy, per-class P/R/F1, ROC-AUC and confusion matrix of `cfg.model` on `cfg.dataset`
    (by default on the model's own validation hold-out, re-created from its manifest)."""
    model_dir = Path(cfg.model)
    reviews, name = _reviews(cfg, model_dir)
    out_dir = Path(cfg.output) if cfg.output else _default_output(model_dir)
    if (model_dir / MANIFEST).exists():  # an exported folder: raw and calibrated, as served
        raw, temperature = _onnx_logits(cfg, model_dir, reviews)
        calibrated = probabilities(raw / temperature) if temperature != 1.0 else None
        metrics = write_report(reviews.labels, probabilities(raw), out_dir, f"{model_dir.name} on {name}", calibrated)
        metrics["temperature"] = temperature
    else:
        probs = probabilities(_torch_logits(cfg, model_dir, reviews))
        metrics = write_report(reviews.labels, probs, out_dir, f"{model_dir.name} on {name}")
    metrics["data"] = reviews.describe()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("wrote %s", out_dir)
    return metrics


def _default_output(model_dir: Path) -> Path:
    """MODEL/evaluation, except for the bundled model: nothing is ever written inside the installed package."""
    return Path("evaluation") if model_dir.resolve() == DEFAULT_MODEL_DIR.resolve() else model_dir / "evaluation"


def _reviews(cfg: EvaluateConfig, model_dir: Path) -> tuple[Reviews, str]:
    if cfg.dataset:
        return load_reviews(cfg.dataset, cfg.split, cfg.text_column, cfg.label_column), Path(cfg.dataset).name
    manifest_path = next((p for p in (model_dir / MANIFEST, model_dir / TRAINING_MANIFEST) if p.exists()), None)
    params = json.loads(manifest_path.read_text()).get("hyperparameters") if manifest_path else None
    if not params or not params.get("dataset"):
        raise UserError(f"{model_dir} does not say where its validation reviews are: pass --dataset FILE")
    try:
        return validation_split(params), "its validation hold-out"
    except UserError as error:
        raise UserError(f"the model's validation reviews could not be loaded ({error}): pass --dataset FILE") from error


def _onnx_logits(cfg: EvaluateConfig, model_dir: Path, reviews: Reviews) -> tuple[np.ndarray, float]:
    """Raw logits of an exported folder, and the temperature the scorer divides them by when serving."""
    from ..scorer import Scorer

    scorer = Scorer.load(model_dir, calibrated=False)
    temperature = float(scorer.manifest.get("temperature", 1.0))
    return scorer.logits(reviews.texts, batch_size=cfg.batch_size, cleaned=True), temperature


def _torch_logits(cfg: EvaluateConfig, model_dir: Path, reviews: Reviews) -> np.ndarray:
    from ..text import ReviewEncoder, TextSpec
    from .modeling import load_model_dir, pick_device, predict_logits

    model, tokenizer, manifest = load_model_dir(model_dir)
    spec = TextSpec.from_dict(manifest["text_spec"]) if manifest else TextSpec()
    device = pick_device(cfg.device)
    encoder = ReviewEncoder(tokenizer.backend_tokenizer, spec)
    return predict_logits(model.to(device), encoder.encode(reviews.texts), encoder.pad_id, device, cfg.batch_size)
