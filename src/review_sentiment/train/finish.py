"""The end of a run: best weights → adapter/, validation report and plots, merged/ (checked against the
adapter), the training manifest that export reads, and model cards. A full fine-tuning run has no adapter:
its merged/ is the trained model itself."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from .. import __version__
from ..calibration import calibrate, cross_fitted
from ..card import METHOD_NAMES, training_card_metrics, write_model_card
from ..errors import UserError
from ..manifest import TRAINING_MANIFEST
from ..metrics import cross_entropy
from ..scoring import probabilities
from .checkpoint import load_trainable
from .config import RESUME_FREE, unused_options
from .modeling import merge, predict_logits, save_merged, to_tensors, trainable_parameters
from .report import plot_training_curves, write_report
from .state import dtype_name

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from .state import Run, TrainState

log = logging.getLogger(__name__)

MERGE_ATOL = 1e-4  # largest logit gap between merged/ and adapter/ that the merge check accepts
# The validation figures the manifest carries (the last two only for numeric labels such as star ratings).
MANIFEST_METRICS = (
    "accuracy", "macro_f1", "roc_auc", "val_loss", "count", "warning", "mean_absolute_error", "within_one_class",
)  # fmt: skip


def finish(run: Run, state: TrainState) -> Path:
    """Write everything the next stages read; returns the run's output folder."""
    cfg = run.cfg
    if run.best is not None:
        load_trainable(run.model, run.best, cfg.output / "checkpoint" / "best.safetensors")
    run.model.eval()
    lora = cfg.method == "lora"
    trainable = trainable_parameters(run.model)  # before the merge unwraps the LoRA layers
    if lora:
        _save_adapter(run)
    logits = predict_logits(run.model, run.val_ids, run.encoder.pad_id, run.device, cfg.eval_batch_size)
    labels = run.val_set.labels
    after = probabilities(cross_fitted(logits, labels))  # the curve and figures a fitted temperature gives
    title = f"{cfg.base_model} + {METHOD_NAMES[cfg.method]}, validation"
    metrics = write_report(labels, probabilities(logits), cfg.output, title, after, run.labels)
    metrics["calibration"] = calibrate(logits, labels)
    if metrics["warning"]:
        log.warning("!!! %s", metrics["warning"])
    metrics["val_loss"] = cross_entropy(logits, run.val_set.labels)
    plot_training_curves(cfg.output / "history.jsonl", cfg.output / "training_curves.png", len(run.labels))
    merged, merge_gap = _merge_checked(run) if lora else (run.model.to(torch.device("cpu"), torch.float32), None)
    merge_failure = _merge_failure(merge_gap)
    if merge_failure:
        log.error("!!! %s", merge_failure)  # everything is still written: the run is not lost to the check
        metrics["warning"] = "; ".join(w for w in (metrics["warning"], merge_failure) if w)
    metrics["training"] = _training_facts(run, state, merge_gap, trainable)
    (cfg.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest = _manifest(run, metrics)
    if lora:
        (cfg.output / "adapter" / TRAINING_MANIFEST).write_text(json.dumps(manifest, indent=2))
    save_merged(merged, run.tokenizer, cfg.output / "merged", manifest)
    # adapter/README.md replaces the boilerplate peft wrote, which names the base by this machine's path.
    folders = [(cfg.output, "run"), (cfg.output / "merged", "merged")] + [(cfg.output / "adapter", "adapter")] * lora
    for folder, kind in folders:
        write_model_card(folder / "README.md", manifest, kind, training_card_metrics(manifest))
    auc = "ROC-AUC" if len(run.labels) == 2 else "ROC-AUC macro one-vs-rest"
    ordinal = f", MAE {metrics['mean_absolute_error']:.3f}" if "mean_absolute_error" in metrics else ""
    log.info(
        "validation accuracy %.4f (macro F1 %.4f, %s %.4f%s); %.1f reviews/s on %s; wrote %s",
        metrics["accuracy"], metrics["macro_f1"], auc, metrics["roc_auc"], ordinal,
        metrics["training"]["reviews_per_second"], run.device, cfg.output,
    )  # fmt: skip
    if merge_failure:
        raise UserError(f"{merge_failure}; all outputs are written, and adapter/ is the model that was validated")
    return cfg.output


def _save_adapter(run: Run) -> None:
    adapter_dir = run.cfg.output / "adapter"
    run.model.save_pretrained(adapter_dir)
    # Name the base as the user did ('minilm', a Hub id), not this machine's path to it.
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = run.cfg.base_model
    (adapter_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    run.tokenizer.save_pretrained(adapter_dir)


def _merge_checked(run: Run) -> tuple[PreTrainedModel, float]:
    """The merged model (on CPU, fp32), and the largest logit gap to the adapter on 16 validation reviews.

    Merged and compared on CPU in fp32 whatever the training device: on CUDA, cuBLAS may choose another
    algorithm for W·x than for W·x + B·A·x, and the gap would measure that choice rather than the merge.
    """
    cpu = torch.device("cpu")
    model = run.model.to(cpu, torch.float32)
    probe = to_tensors(run.val_ids[:16], run.encoder.pad_id, cpu)
    with torch.inference_mode():
        before = model(**probe).logits.float()
        merged = merge(model)
        after = merged(**probe).logits.float()
    return merged, float((before - after).abs().max())


def _merge_failure(gap: float | None) -> str | None:
    if gap is None or gap <= MERGE_ATOL:
        return None
    return f"merged/ does not match adapter/: their logits differ by {gap:.2e} (more than {MERGE_ATOL:g})"


def _training_facts(run: Run, state: TrainState, merge_gap: float | None, trainable: int) -> dict:
    """What the run did; the merge figures are None for full fine-tuning, which has nothing to merge."""
    return {
        "method": run.cfg.method,
        "trainable_parameters": trainable,
        "device": str(run.device),
        "dtype": dtype_name(run.amp_dtype),
        "steps": state.step,
        "epochs_completed": round(state.reviews_seen / max(len(run.train_set), 1), 3),
        "best_step": state.best_step,
        "stop_reason": state.stop_reason,
        "train_seconds": round(state.train_seconds, 1),
        "reviews_per_second": round(state.reviews_seen / max(state.train_seconds, 1e-9), 2),
        "merge_max_abs_logit_diff": merge_gap,  # measured on CPU in fp32
        "merge_check_passed": None if merge_gap is None else merge_gap <= MERGE_ATOL,
        "torch_version": torch.__version__,
    }


def _manifest(run: Run, metrics: dict) -> dict:
    """training_manifest.json: the text contract, data, metrics and options that export and evaluate read."""
    cfg = run.cfg
    split = (
        f"eval file {cfg.eval_file}"
        if cfg.eval_file
        else f"stratified {cfg.val_fraction:.0%} hold-out, seed {cfg.seed}"
        + (f", from a stratified subset of {cfg.max_samples}" if cfg.max_samples else "")
    )
    unused = unused_options(cfg.method)
    options = {k: v for k, v in cfg.to_dict().items() if k not in RESUME_FREE and k not in unused}
    # The labels the model was built with, found or given: export and evaluate re-read the data with them.
    options["labels"] = list(run.labels)
    return {
        "text_spec": replace(cfg.spec, labels=run.labels).to_dict(),
        "base_model": cfg.base_model,
        "data": {"train": run.train_set.describe(), "validation": run.val_set.describe(), "split": split},
        "metrics": {k: metrics[k] for k in MANIFEST_METRICS if k in metrics},
        "training": metrics["training"],
        "hyperparameters": options,
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
