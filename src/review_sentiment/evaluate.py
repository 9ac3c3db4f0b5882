"""`sentiment evaluate`: score a labelled file with a trained model and write metrics and plots."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .data import load_reviews
from .metrics import probabilities, write_report

log = logging.getLogger(__name__)


@dataclass
class EvaluateConfig:
    model: Path = field(metadata={"help": "a merged model folder, a LoRA adapter folder, or an exported ONNX folder"})
    dataset: str = field(metadata={"help": "labelled reviews: CSV/TSV/Parquet/JSONL, aclImdb folder, or Hub id"})
    output: Path | None = field(
        default=None, metadata={"help": "folder for metrics.json and plots (default: MODEL/evaluation)"}
    )
    text_column: str | None = field(default=None, metadata={"help": "text column (detected when omitted)"})
    label_column: str | None = field(default=None, metadata={"help": "label column (detected when omitted)"})
    split: str = field(default="test", metadata={"help": "split to use for a Hub dataset"})
    batch_size: int = field(default=64, metadata={"help": "reviews per batch"})
    device: Literal["auto", "cuda", "cpu"] = field(default="auto", metadata={"help": "PyTorch device for torch models"})


def evaluate(cfg: EvaluateConfig) -> dict:
    """Accuracy, per-class P/R/F1, ROC-AUC and confusion matrix of `cfg.model` on `cfg.dataset`."""
    reviews = load_reviews(cfg.dataset, cfg.split, cfg.text_column, cfg.label_column)
    model_dir = Path(cfg.model)
    if (model_dir / "manifest.json").exists():
        from .runtime import Scorer

        probs = probabilities(Scorer.load(model_dir).logits(reviews.texts, batch_size=cfg.batch_size, cleaned=True))
    else:
        from .modeling import load_model_dir, pick_device, predict_logits
        from .text import ReviewEncoder, TextSpec

        model, tokenizer, manifest = load_model_dir(model_dir)
        spec = TextSpec.from_dict(manifest["text_spec"]) if manifest else TextSpec()
        device = pick_device(cfg.device)
        encoder = ReviewEncoder(tokenizer.backend_tokenizer, spec)
        logits = predict_logits(model.to(device), encoder.encode(reviews.texts), encoder.pad_id, device, cfg.batch_size)
        probs = probabilities(logits)
    out_dir = Path(cfg.output) if cfg.output else model_dir / "evaluation"
    metrics = write_report(reviews.labels, probs, out_dir, f"{model_dir.name} on {Path(cfg.dataset).name}")
    metrics["data"] = reviews.describe()
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    log.info("wrote %s", out_dir)
    return metrics
