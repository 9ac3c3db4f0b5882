"""`sentiment evaluate`: score labelled reviews with a trained or exported model; write metrics and plots."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..manifest import DEFAULT_MODEL_DIR, MANIFEST, TRAINING_MANIFEST, folder_labels
from ..scoring import probabilities
from ..text import TextSpec
from .config import EvaluateConfig
from .data import Reviews, load_reviews, validation_split
from .report import write_report

log = logging.getLogger(__name__)


def evaluate(cfg: EvaluateConfig) -> dict:
    """Accuracy, per-class P/R/F1, ROC-AUC and confusion matrix of `cfg.model` on `cfg.dataset`
    (by default on the model's own validation hold-out, re-created from its manifest); the labels are the
    model's, and a value in the data that names none of them is an error."""
    model_dir = _model_folder(Path(cfg.model))
    names = folder_labels(model_dir)
    reviews, name = _reviews(cfg, model_dir, names)
    out_dir = Path(cfg.output) if cfg.output else _default_output(model_dir)
    title = f"{model_dir.name} on {name}"
    if (model_dir / MANIFEST).exists():  # an exported folder: raw and calibrated, as served
        raw, temperature = _onnx_logits(cfg, model_dir, reviews)
        calibrated = probabilities(raw / temperature) if temperature != 1.0 else None
        metrics = write_report(reviews.labels, probabilities(raw), out_dir, title, calibrated, names)
        metrics["temperature"] = temperature
    else:
        probs = probabilities(_torch_logits(cfg, model_dir, reviews))
        metrics = write_report(reviews.labels, probs, out_dir, title, names=names)
    metrics["data"] = reviews.describe()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("wrote %s", out_dir)
    return metrics


def _model_folder(path: Path) -> Path:
    """The model in `path`: an exported or merged folder itself, or a training run's merged/ (what a user who
    just trained will pass)."""
    if any((path / name).is_file() for name in (MANIFEST, TRAINING_MANIFEST, "config.json")):
        return path
    if (path / "merged" / TRAINING_MANIFEST).is_file():
        log.info("%s is a training run: evaluating its merged model, %s", path, path / "merged")
        return path / "merged"
    if path.is_file():
        raise UserError(f"{path} is a file, not a model folder")
    if not path.is_dir():
        raise UserError(f"model folder not found: {path}")
    if (path / "checkpoint").is_dir():
        raise UserError(
            f"{path} is a training run that has not finished (a checkpoint, no merged/): continue it with "
            "`sentiment train` with the same options plus --resume"
        )
    raise UserError(
        f"{path} holds no model (no {MANIFEST}, {TRAINING_MANIFEST} or config.json): pass an exported folder, "
        "a merged or adapter folder, or a training run's folder"
    )


def _default_output(model_dir: Path) -> Path:
    """MODEL/evaluation, except for the bundled model: nothing is ever written inside the installed package."""
    return Path("evaluation") if model_dir.resolve() == DEFAULT_MODEL_DIR.resolve() else model_dir / "evaluation"


def _reviews(cfg: EvaluateConfig, model_dir: Path, names: tuple[str, ...]) -> tuple[Reviews, str]:
    if cfg.dataset:
        reviews = load_reviews(cfg.dataset, cfg.split, cfg.text_column, cfg.label_column, names, "of the model")
        return reviews, Path(cfg.dataset).name
    manifest_path = next((p for p in (model_dir / MANIFEST, model_dir / TRAINING_MANIFEST) if p.exists()), None)
    params = json.loads(manifest_path.read_text()).get("hyperparameters") if manifest_path else None
    if not params or not params.get("dataset"):
        raise UserError(f"{model_dir} does not say where its validation reviews are: pass --dataset FILE")
    try:
        reviews = validation_split(params)
    except UserError as error:
        raise UserError(f"the model's validation reviews could not be loaded ({error}): pass --dataset FILE") from error
    if reviews.names != names:
        raise UserError(
            f"the model's validation reviews make the labels {list(reviews.names)}, but the model has "
            f"{list(names)}: pass --dataset FILE"
        )
    return reviews, "its validation hold-out"


def _onnx_logits(cfg: EvaluateConfig, model_dir: Path, reviews: Reviews) -> tuple[np.ndarray, float]:
    """Raw logits of an exported folder, and the temperature the scorer divides them by when serving."""
    from ..scorer import Scorer

    scorer = Scorer.load(model_dir, calibrated=False)
    temperature = float(scorer.manifest.get("temperature", 1.0))
    return scorer.logits(reviews.texts, batch_size=cfg.batch_size, cleaned=True), temperature


def _torch_logits(cfg: EvaluateConfig, model_dir: Path, reviews: Reviews) -> np.ndarray:
    from ..text import ReviewEncoder
    from .modeling import load_model_dir, pick_device, predict_logits

    model, tokenizer, manifest = load_model_dir(model_dir)
    spec = TextSpec.from_dict(manifest["text_spec"]) if manifest else TextSpec()
    device = pick_device(cfg.device)
    encoder = ReviewEncoder(tokenizer.backend_tokenizer, spec)
    return predict_logits(model.to(device), encoder.encode(reviews.texts), encoder.pad_id, device, cfg.batch_size)
