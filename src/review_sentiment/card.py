"""Model cards in the Hugging Face Hub format, written from a stage's manifest."""

from __future__ import annotations

import json
from pathlib import Path

HUB_ID_OF_ALIAS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}


def _front_matter(manifest: dict, library: str, metrics: dict) -> str:
    base = HUB_ID_OF_ALIAS.get(manifest["base_model"], manifest["base_model"])
    source = manifest["data"]["train"]["source"]
    lines = [
        "---",
        "license: apache-2.0",
        f"library_name: {library}",
        "pipeline_tag: text-classification",
        "language: en",
        "tags: [sentiment-analysis, text-classification, lora, movie-reviews"
        + (", onnx" if library == "onnx" else "")
        + "]",
    ]
    if "/" in base and not Path(base).exists():
        lines.append(f"base_model: {base}")
    if source == "imdb" or ("/" in source and not Path(source).exists()):
        lines.append(f"datasets: [{'stanfordnlp/imdb' if source == 'imdb' else source}]")
    lines.append("metrics: [accuracy, f1, roc_auc]")
    if "accuracy" in metrics:
        lines += [
            "model-index:",
            "- name: review-sentiment",
            "  results:",
            "  - task: {type: text-classification}",
            "    dataset: {name: " + json.dumps(manifest["data"]["split"]) + ", type: " + json.dumps(source) + "}",
            "    metrics:",
            f"    - {{type: accuracy, value: {metrics['accuracy']:.4f}}}",
        ]
        lines += [
            f"    - {{type: {kind}, value: {metrics[key]:.4f}{', name: macro F1' if kind == 'f1' else ''}}}"
            for key, kind in (("macro_f1", "f1"), ("roc_auc", "roc_auc"))
            if isinstance(metrics.get(key), float) and metrics[key] == metrics[key]  # a NaN is no figure
        ]
    return "\n".join([*lines, "---", ""])


def _figure(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return f"{value:.4f}" if isinstance(value, float) and value == value else "not measured"


def write_model_card(path: Path, manifest: dict, library: str, metrics: dict, extra_sections: str = "") -> Path:
    """README.md with Hub metadata, the metrics of the model it describes, data, hyper-parameters and
    how it was trained. `metrics` may say what it was measured on (`measured_on`)."""
    training, data = manifest.get("training", {}), manifest["data"]
    warning = (manifest.get("training_metrics") or manifest.get("metrics") or {}).get("warning")
    spec = manifest["text_spec"]
    hyper = "\n".join(f"| {k} | {v} |" for k, v in manifest.get("hyperparameters", {}).items())
    body = f"""# Movie-review sentiment: {manifest["base_model"]} + LoRA

Binary sentiment classifier (labels: {", ".join(spec["labels"])}) fine-tuned with LoRA by
`review_sentiment` {manifest.get("package_version", "")}. Reviews are cleaned (HTML removed,
whitespace collapsed) and cut to {spec["max_length"]} tokens keeping the **{spec["truncation"]}** of long ones.

## Validation metrics
Split: {data["split"]} ({data["validation"]["rows"]} reviews, {data["validation"]["balance"]}).
Measured on: {metrics.get("measured_on", "this model, all validation reviews")}.
{f"{chr(10)}> **Warning: {warning}.**{chr(10)}" if warning else ""}
| metric | value |
| --- | --- |
| accuracy | {_figure(metrics, "accuracy")} |
| macro F1 | {_figure(metrics, "macro_f1")} |
| ROC-AUC | {_figure(metrics, "roc_auc")} |

## Data
Training: `{data["train"]["source"]}`, {data["train"]["rows"]} reviews, balance {data["train"]["balance"]};
{data["train"]["dropped_empty"]} empty and {data["train"]["dropped_duplicates"]} duplicate rows dropped before the split.

## Training
Device {training.get("device")} ({training.get("dtype")}), {training.get("steps")} optimizer steps,
{training.get("train_seconds")} s at {training.get("reviews_per_second")} reviews/s; best weights from step
{training.get("best_step")}; stop: {training.get("stop_reason")}.

| hyper-parameter | value |
| --- | --- |
{hyper}
{extra_sections}"""
    path.write_text(_front_matter(manifest, library, metrics) + body)
    return path
