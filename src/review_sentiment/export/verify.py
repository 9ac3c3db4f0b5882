"""How an export is checked: parity with PyTorch, and each variant measured on the same validation reviews."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..manifest import MANIFEST, MODEL_FILE
from ..metrics import agreement, classification_metrics
from ..scorer import Scorer
from ..scoring import predicted_classes, probabilities
from ..text import clean_text, pad_batch
from .config import ExportConfig, cpu_int8_target

log = logging.getLogger(__name__)

# The validation figures an export records for each variant; the last two only for numeric labels (star ratings).
METRIC_KEYS = ("accuracy", "macro_f1", "roc_auc", "mean_absolute_error", "within_one_class")
# Fixed probes for the fp32 parity check: short, long, punctuation, non-ASCII, HTML.
PROBES = (
    "A wonderful film, beautifully acted and shot.",
    "Dull, predictable and far too long. I wanted my two hours back.",
    "It's not bad... but it's not good either.",
    "Les acteurs sont excellents, mais le scénario est faible. 10/10 would not watch again!",
    "<br /><br />The ending ruined it for me.",
    " ".join(["The plot meanders but the cast carries every scene with warmth and humour."] * 60),
    "ok",
)


def validation_sample(training: dict, limit: int, reviews=None) -> tuple[list[str], np.ndarray] | None:
    """Up to `limit` reviews of the training run's validation split (cleaned) and their labels, re-created
    from its manifest (local files or a Hub dataset) unless given as `reviews`; None, with a warning, when
    they cannot be loaded. A fixed, sorted random pick."""
    from ..train.data import validation_split

    params = training.get("hyperparameters") or {}
    if not limit or not params.get("dataset"):
        return None
    if reviews is None:
        try:
            reviews = validation_split(params)
        except UserError as error:
            log.warning("the run's validation reviews could not be loaded (%s): accuracy is not measured", error)
            return None
    pick = np.sort(np.random.default_rng(0).permutation(len(reviews))[:limit])
    return [reviews.texts[i] for i in pick], reviews.labels[pick]


def run_reviews(training: dict):
    """The run's (train, validation) reviews, re-created from its manifest, for static int8's calibration."""
    from ..train.data import run_split

    params = training.get("hyperparameters") or {}
    try:
        if not params.get("dataset"):
            raise UserError("the training manifest names no dataset")
        return run_split(params)
    except UserError as error:
        raise UserError(
            f"static int8 calibrates on the run's training reviews, which could not be loaded ({error}): "
            "put the data back, or pass --int8-mode dynamic"
        ) from error


def calibration_reviews(train_set, limit: int) -> list[str]:
    """Up to `limit` reviews of the run's training split: static int8 is calibrated on these, never on the
    validation reviews it is then measured on. A fixed, sorted random pick."""
    pick = np.sort(np.random.default_rng(1).permutation(len(train_set))[:limit])
    return [train_set.texts[i] for i in pick]


def torch_reference_logits(merged: Path, scorer: Scorer, texts: list[str]) -> np.ndarray:
    """The merged PyTorch model's logits on exactly the token ids the ONNX scorer feeds."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    out = []
    for text in texts:
        ids, mask = pad_batch(scorer.encoder.encode([clean_text(text)]), scorer.encoder.pad_id)
        with torch.inference_mode():
            out.append(model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits[0].numpy())
    return np.stack(out)


def measure(
    folder: Path, texts: list[str], labels: np.ndarray | None, reference: np.ndarray | None, cleaned: bool = False
) -> dict:
    """Size, latency, agreement with the reference logits and, given labels, the validation metrics of
    one exported variant: all on exactly `texts`, row i of every array being review i."""
    manifest = json.loads((folder / MANIFEST).read_text())
    row = {
        "variant": manifest["quantization"] if manifest["quantization"] != "none" else "fp32",
        "optimization": manifest["optimization"],
        "size_mb": (folder / MODEL_FILE).stat().st_size / 1e6,
        "reviews": len(texts),
    }
    # Raw logits: parity with PyTorch is about the graph; a temperature would only rescale them. A graph
    # that does not load fails the export (an error here is never a row to skip).
    scorer = Scorer.load(folder, provider="auto" if manifest["quantization"] == "fp16" else "cpu", calibrated=False)
    scorer.logits(texts[:8], cleaned=cleaned)  # warm-up
    started = time.perf_counter()
    logits = scorer.logits(texts, cleaned=cleaned)
    row["ms_per_review"] = 1000 * (time.perf_counter() - started) / max(len(texts), 1)
    row["provider"] = scorer.provider
    probs = probabilities(logits)
    if reference is not None:
        row["agreement"] = agreement(predicted_classes(probs), predicted_classes(probabilities(reference)))
        row["max_abs_logit_diff"] = float(np.abs(logits - reference).max())
    if labels is not None:  # class indices in the order of the model's labels, as the logits are
        metrics = classification_metrics(labels, probs, scorer.labels)
        row.update({k: metrics[k] for k in METRIC_KEYS if k in metrics})
    return row


# fp16 against fp32 on the same reviews: beyond this logit gap, or (on at least FP16_AGREEMENT_FROM reviews)
# below this label agreement, the export fails. Within the logit gap a label can only flip where fp32's two
# logits are within 2 × 5e-2 of each other, a near tie; on a handful of probes one such flip is no evidence.
FP16_MAX_LOGIT_DIFF = 5e-2
FP16_MIN_AGREEMENT = 0.99
FP16_AGREEMENT_FROM = 100


def check_fp16(row: dict) -> None:
    """Fail an fp16 export that strays from fp32; say which provider the figures come from."""
    if row["variant"] != "fp16":
        return
    agreement_, gap, count = row["agreement"], row["max_abs_logit_diff"], row["reviews"]
    if gap > FP16_MAX_LOGIT_DIFF or (count >= FP16_AGREEMENT_FROM and agreement_ < FP16_MIN_AGREEMENT):
        raise UserError(
            f"export failed verification: on {count} reviews fp16 agrees with fp32 on {100 * agreement_:.2f}% of "
            f"labels (needs ≥ {100 * FP16_MIN_AGREEMENT:.0f}% from {FP16_AGREEMENT_FROM} reviews), max |Δlogit| "
            f"{gap:.2e} (needs ≤ {FP16_MAX_LOGIT_DIFF:.0e}), on {row['provider']}"
        )
    if row["provider"] == "CPUExecutionProvider":
        log.warning(
            "fp16 was checked on the CPU provider, which runs fp16 nodes in fp32: confirm it on the GPU with "
            "`sentiment export --check FOLDER` on a machine with CUDA"
        )


def format_table(rows: list[dict]) -> str:
    lines = [f"{'variant':<8} {'optim':<5} {'size MB':>8} {'agreement':>9} {'accuracy':>8} {'ms/review':>9}  provider"]

    def pct(row: dict, key: str) -> str:
        return f"{100 * row[key]:.2f}%" if key in row else "n/a"

    for r in rows:
        ms = f"{r['ms_per_review']:.1f}" if "ms_per_review" in r else "n/a"
        lines.append(
            f"{r['variant']:<8} {r['optimization']:<5} {r['size_mb']:>8.1f} {pct(r, 'agreement'):>9} "
            f"{pct(r, 'accuracy'):>8} {ms:>9}  {r.get('provider', r.get('error', ''))}"
        )
    return "\n".join(lines)


def served_metrics(row: dict, training: dict, labels: np.ndarray | None) -> dict:
    """The validation metrics of the variant this folder serves, saying what they were measured on;
    the training run's fp32 figures (labelled as such) when the validation data was not here."""
    total = training.get("data", {}).get("validation", {}).get("rows", "?")
    if labels is not None and "accuracy" in row:
        return {
            **{k: row[k] for k in METRIC_KEYS if k in row},
            "count": len(labels),
            "measured_on": f"{row['variant']} ONNX, {len(labels)} of the {total} validation reviews",
        }
    metrics = training.get("metrics", {})
    return {
        **{k: metrics[k] for k in (*METRIC_KEYS, "count") if k in metrics},
        "measured_on": f"fp32 PyTorch at training time, {total} validation reviews; "
        f"the {row['variant']} ONNX variant was not measured (validation data not on the export machine)",
    }


def warn_on_accuracy_drop(rows: list[dict], cfg: ExportConfig) -> None:
    if len(rows) < 2 or "accuracy" not in rows[0] or "accuracy" not in rows[1]:
        return
    drop = 100 * (rows[0]["accuracy"] - rows[1]["accuracy"])
    if drop > 0.5:
        better = "serve fp32 instead (--quantize none)"
        if cfg.quantize == "int8" and cpu_int8_target() != "avx512_vnni":
            better += "; this CPU lacks AVX512-VNNI, where int8 is known to lose accuracy"
        log.warning(
            "!!! %s loses %.2f accuracy points against fp32 on the validation sample: %s",
            rows[1]["variant"],
            drop,
            better,
        )


def card_section(manifest: dict, rows: list[dict]) -> str:
    return f"""
## ONNX export
`model.onnx` ({manifest["quantization"] if manifest["quantization"] != "none" else "fp32"}, optimization
{manifest["optimization"]}, opset {manifest["opset"]}), checked with ONNX Runtime {manifest["onnxruntime_version"]}:
fp32 matches PyTorch within {manifest["export_check"]["fp32_vs_pytorch_max_abs_logit_diff"]:.1e} (max |Δlogit|).
Its {len(manifest["labels"])} logits are, in order: {", ".join(f"`{name}`" for name in manifest["labels"])}.

```
{format_table(rows)}
```

{_calibration_line(manifest.get("calibration", {}))}

Score with `score-csv reviews.csv --model THIS_FOLDER` or serve with `sentiment app --model THIS_FOLDER`.
"""


def _calibration_line(calibration: dict) -> str:
    if not calibration.get("applied"):
        line = f"Confidence is not rescaled (temperature 1): {calibration.get('reason', 'not calibrated')}."
        if "ece_before" in calibration:
            line += (
                f" Expected calibration error ({calibration['ece_bins']} bins) {calibration['ece_before']:.4f}, Brier "
                f"score {calibration['brier_before']:.4f} on {calibration['reviews']} validation reviews."
            )
        return line
    return (
        f"Confidence is calibrated: the scorer divides the logits by the temperature {calibration['temperature']:.3f} "
        f"(fitted by maximum likelihood on the validation reviews). Expected calibration error "
        f"({calibration['ece_bins']} bins) {calibration['ece_before']:.4f} → {calibration['ece']:.4f}, Brier score "
        f"{calibration['brier_before']:.4f} → {calibration['brier']:.4f} ({calibration['measured_on']})."
    )
