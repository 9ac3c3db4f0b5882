"""Model cards in the Hugging Face Hub format, written from a stage's manifest: one card, varied by the kind
of folder it describes. A card names base models and datasets by their public names, never by a path on
the machine that trained them: a Hub id stays as it is, a local file or folder becomes its name."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path

HUB_ID_OF_ALIAS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}
HUB_DATASET_OF_ALIAS = {"imdb": "stanfordnlp/imdb"}
# What each kind of folder is to the Hub: a training run's folder, its merged/ and adapter/, an ONNX export.
LIBRARY_OF_KIND = {"run": "transformers", "merged": "transformers", "adapter": "peft", "onnx": "onnx"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_FILE_SUFFIXES = {".csv", ".tsv", ".parquet", ".json", ".jsonl", ".txt", ".arrow", ".gz", ".zip", ".xlsx"}
# Options of a run that are no hyper-parameter, or a path only this machine knows.
_PATH_OPTIONS = {"dataset", "eval_file", "base_model"}
_HIDDEN_OPTIONS = {"output"}


def is_local_path(name: str) -> bool:
    """Whether a base model or dataset named in a manifest is a path (on this or another machine), not a Hub id."""
    if name in HUB_ID_OF_ALIAS or name in HUB_DATASET_OF_ALIAS:
        return False
    path = Path(name)
    return (
        path.is_absolute()
        or name.startswith(("~", "."))
        or not _HUB_ID.fullmatch(name)
        or path.suffix.lower() in _FILE_SUFFIXES
        or path.exists()
    )


def hub_model_id(base: str) -> str | None:
    """The base model's Hub id ('minilm' is the bundled sentence-transformers/all-MiniLM-L6-v2); None for a folder."""
    return None if is_local_path(base) else HUB_ID_OF_ALIAS.get(base, base)


def hub_dataset_id(source: str) -> str | None:
    """The dataset's Hub id ('imdb' is stanfordnlp/imdb); None for a local file or folder."""
    return None if is_local_path(source) else HUB_DATASET_OF_ALIAS.get(source, source)


def _base_name(path: str) -> str:
    """A path's last part, split at / and at \\ whatever the machine (a Windows run's path, read on Linux)."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1]


def model_name(base: str) -> str:
    """A base model as a card names it: its Hub id, or a local folder's name said to be one."""
    return hub_model_id(base) or f"{_base_name(base)} (a local model folder)"


def short_model_name(base: str) -> str:
    """A base model as a visitor reads it: `model_name` without the Hub owner ("all-MiniLM-L6-v2")."""
    return model_name(base).split("/")[-1]


def dataset_name(source: str) -> str:
    """A dataset as a card names it: its Hub id, or a local file's (or folder's) name said to be one."""
    if hub_dataset_id(source):
        return str(hub_dataset_id(source))
    name = _base_name(source)
    return f"{name} (a local {'file' if Path(name).suffix else 'folder'})"


def public_split(split: str, namer: Callable[[str], str] = dataset_name) -> str:
    """The validation split's description with an eval file named by `namer` (as a card names it by default)."""
    prefix = "eval file "
    return prefix + namer(split[len(prefix) :]) if split.startswith(prefix) else split


def public_model_id(base: str) -> str:
    """A base model as an uploaded folder's JSON files name it: its Hub id, or a local folder's bare name."""
    return hub_model_id(base) or _base_name(base)


def public_path(name: str) -> str:
    """A dataset or eval file as an uploaded folder's JSON files name it: a Hub id as it is, a path's last part."""
    return _base_name(name) if is_local_path(name) else name


def public_manifest(manifest: dict) -> dict:
    """A copy of a training or export manifest with each path of the training machine replaced by its public
    name: base model (`public_model_id`), data sources and eval file (`public_path`), and the output and
    source-model folders (always paths) by their folder names. Everything else is kept as it is."""
    clean = copy.deepcopy(manifest)
    if isinstance(clean.get("base_model"), str):
        clean["base_model"] = public_model_id(clean["base_model"])
    data = clean.get("data") if isinstance(clean.get("data"), dict) else {}
    for part in ("train", "validation"):
        if isinstance(data.get(part), dict) and isinstance(data[part].get("source"), str):
            data[part]["source"] = public_path(data[part]["source"])
    if isinstance(data.get("split"), str):
        data["split"] = public_split(data["split"], public_path)
    options = clean.get("hyperparameters") if isinstance(clean.get("hyperparameters"), dict) else {}
    namers = {"dataset": public_path, "eval_file": public_path, "base_model": public_model_id, "output": _base_name}
    for key, namer in namers.items():
        if isinstance(options.get(key), str):
            options[key] = namer(options[key])
    if isinstance(clean.get("source_model"), str):
        clean["source_model"] = _base_name(clean["source_model"])
    return clean


def local_paths(manifest: dict) -> list[str]:
    """Every path (not a bare name) of the training machine that a manifest records: data, eval file, base
    model, output folder, an export's source model. A card must show none of them."""
    data, options = manifest.get("data", {}), manifest.get("hyperparameters", {})
    names = [manifest.get("base_model"), *(data.get(part, {}).get("source") for part in ("train", "validation"))]
    names += [options.get(key) for key in (*_PATH_OPTIONS, *_HIDDEN_OPTIONS)] + [manifest.get("source_model")]
    return sorted({n for n in names if isinstance(n, str) and is_local_path(n) and ("/" in n or "\\" in n)})


def training_card_metrics(manifest: dict) -> dict:
    """A training manifest's validation metrics, saying what they were measured on, as its cards show them."""
    reviews = manifest.get("data", {}).get("validation", {}).get("rows", "the")
    return {**manifest.get("metrics", {}), "measured_on": f"fp32 PyTorch, all {reviews} validation reviews"}


def _model_index(manifest: dict, metrics: dict) -> list[str]:
    """The validation figures as the Hub's model-index; a local dataset gets the type `local`, not its path."""
    data = manifest["data"]
    source = data.get("validation", {}).get("source") or data["train"]["source"]
    name = f"{dataset_name(source)}, {public_split(data['split'])}"
    lines = [
        "model-index:",
        "- name: review-sentiment",
        "  results:",
        "  - task: {type: text-classification}",
        f"    dataset: {{name: {json.dumps(name)}, type: {json.dumps(hub_dataset_id(source) or 'local')}}}",
        "    metrics:",
        f"    - {{type: accuracy, value: {metrics['accuracy']:.4f}}}",
    ]
    return lines + [
        f"    - {{type: {kind}, value: {metrics[key]:.4f}{', name: macro F1' if kind == 'f1' else ''}}}"
        for key, kind in (("macro_f1", "f1"), ("roc_auc", "roc_auc"))
        if isinstance(metrics.get(key), float) and metrics[key] == metrics[key]  # a NaN is no figure
    ]


def front_matter(manifest: dict, kind: str, metrics: dict) -> str:
    """The card's YAML metadata: license, library, task, tags, base model and dataset (Hub ids only), metrics."""
    base = hub_model_id(manifest["base_model"])
    datasets = {hub_dataset_id(manifest["data"][part]["source"]) for part in ("train", "validation")}
    tags = ["sentiment-analysis", "text-classification", *["lora"] * (method_of(manifest) == "lora"), "movie-reviews"]
    tags += {"onnx": ["onnx"], "adapter": ["peft"]}.get(kind, [])
    lines = [
        "---",
        "license: apache-2.0",
        f"library_name: {LIBRARY_OF_KIND[kind]}",
        "pipeline_tag: text-classification",
        "language: en",
        f"tags: [{', '.join(tags)}]",
    ]
    if base:
        lines.append(f"base_model: {base}")
    if datasets - {None}:
        lines.append(f"datasets: [{', '.join(sorted(d for d in datasets if d))}]")
    lines.append("metrics: [accuracy, f1, roc_auc]")
    if "accuracy" in metrics:
        lines += _model_index(manifest, metrics)
    return "\n".join([*lines, "---", ""])


def _figure(metrics: dict, key: str) -> str:
    value = metrics.get(key)
    return f"{value:.4f}" if isinstance(value, float) and value == value else "not measured"


def _classifier(labels: list[str]) -> str:
    """What the model tells apart: its labels in class order (the order of its outputs)."""
    if len(labels) == 2:
        return f"Binary sentiment classifier (labels: {', '.join(labels)})"
    return f"Sentiment classifier with {len(labels)} labels (in output order: {', '.join(labels)})"


METHOD_NAMES = {"lora": "LoRA", "full": "full fine-tuning"}  # how cards, titles and the Space name a method


def method_of(manifest: dict) -> str:
    """'lora' or 'full' (a run from before `--method` existed was LoRA)."""
    return manifest.get("hyperparameters", {}).get("method", "lora")


def _intro(manifest: dict, kind: str) -> str:
    """The title and what the folder is."""
    base, spec = model_name(manifest["base_model"]), manifest["text_spec"]
    lora = method_of(manifest) == "lora"
    what = {
        "run": "This is a training run's folder: `adapter/` holds the LoRA adapter, `merged/` the same model with "
        "the adapter folded into the base weights, beside `metrics.json`, `history.jsonl` and plots."
        if lora
        else "This is a training run's folder: `merged/` holds the fine-tuned model, beside `metrics.json`, "
        "`history.jsonl` and plots.",
        "merged": "This is a plain `transformers` model: the LoRA adapter folded into the base model's weights, "
        "with its tokenizer."
        if lora
        else "This is a plain `transformers` model with its tokenizer: every weight of the base model fine-tuned.",
        "adapter": f"This is a LoRA adapter (with the trained classifier head), not a model on its own: load it on "
        f"top of the base model {base} with peft.",
        "onnx": "This is an ONNX export, served by ONNX Runtime without PyTorch.",
    }[kind]
    title = f"LoRA adapter for {base}" if kind == "adapter" else f"{base} + {METHOD_NAMES[method_of(manifest)]}"
    return f"""# Movie-review sentiment: {title}

{_classifier(spec["labels"])} fine-tuned {"with LoRA" if lora else "in full (every weight trained)"} by
`review_sentiment` {manifest.get("package_version", "")}. Reviews are cleaned (HTML removed,
whitespace collapsed) and cut to {spec["max_length"]} tokens keeping the **{spec["truncation"]}** of long ones{_trained_length(manifest)}.

{what}
"""


def _trained_length(manifest: dict) -> str:
    """A note when the export reads more (or fewer) tokens than training did (`export --max-length`)."""
    trained = manifest.get("hyperparameters", {}).get("max_length")
    served = manifest["text_spec"]["max_length"]
    return f" (trained reading {trained}; the export reads {served})" if trained and trained != served else ""


def _usage(manifest: dict, kind: str) -> str:
    """How to load the folder, and what our CLI does with it next (an export's own section says that)."""
    if kind == "onnx":
        return ""
    spec = manifest["text_spec"]
    model = "merged" if kind == "run" else "THIS_REPO_OR_FOLDER"
    if kind == "adapter":
        labels = dict(enumerate(spec["labels"]))
        ids = {label: index for index, label in labels.items()}
        base = hub_model_id(manifest["base_model"]) or f"PATH/TO/{_base_name(manifest['base_model'])}"
        load = [
            "from peft import PeftModel",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            "base = AutoModelForSequenceClassification.from_pretrained(",
            f'    "{base}", num_labels={len(labels)}, id2label={labels}, label2id={ids}',
            ")",
            f'model = PeftModel.from_pretrained(base, "{model}").eval()',
        ]
        then = (
            "`sentiment merge THIS_FOLDER --output merged` folds the adapter into the base (checked: logits "
            "within 1e-4), then `sentiment export merged --output onnx` exports it"
        )
    else:
        load = [
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
            "",
            f'model = AutoModelForSequenceClassification.from_pretrained("{model}").eval()',
        ]
        then = f"`sentiment export {'merged' if kind == 'run' else 'THIS_FOLDER'} --output onnx` exports it"
    load.append(f'tokenizer = AutoTokenizer.from_pretrained("{model}")')
    return f"""
## Use it
```python
{chr(10).join(load)}
```
The figures below are for reviews cleaned and cut to {spec["max_length"]} tokens ({spec["truncation"]}) as in
training. {then} to ONNX (optionally int8) with that text contract built in, for `score-csv` and `sentiment app`.
"""


def _hyperparameters(manifest: dict) -> str:
    """The run's options as a table: paths by their public names, the output folder left out."""
    rows = []
    for key, value in manifest.get("hyperparameters", {}).items():
        if key in _HIDDEN_OPTIONS:
            continue
        if key in _PATH_OPTIONS and isinstance(value, str):
            value = model_name(value) if key == "base_model" else dataset_name(value)
        rows.append(f"| {key} | {value} |")
    return "\n".join(rows)


def _ordinal_rows(metrics: dict) -> str:
    """Table rows for numeric labels (star ratings): how far off the predictions are, in the labels' units."""
    rows = [
        f"| {name} | {_figure(metrics, key)} |\n"
        for key, name in (("mean_absolute_error", "mean absolute error"), ("within_one_class", "within one class"))
        if key in metrics
    ]
    return "".join(rows)


def _body(manifest: dict, kind: str, metrics: dict) -> str:
    training, data = manifest.get("training", {}), manifest["data"]
    warning = (manifest.get("training_metrics") or manifest.get("metrics") or {}).get("warning")
    return f"""{_intro(manifest, kind)}{_usage(manifest, kind)}
## Validation metrics
Split: {public_split(data["split"])} ({data["validation"]["rows"]} reviews, {data["validation"]["balance"]}).
Measured on: {metrics.get("measured_on", "this model, all validation reviews")}.
{f"{chr(10)}> **Warning: {warning}.**{chr(10)}" if warning else ""}
| metric | value |
| --- | --- |
| accuracy | {_figure(metrics, "accuracy")} |
| macro F1 | {_figure(metrics, "macro_f1")} |
| {"ROC-AUC" if len(manifest["text_spec"]["labels"]) == 2 else "ROC-AUC (macro, one-vs-rest)"} | {_figure(metrics, "roc_auc")} |
{_ordinal_rows(metrics)}
## Data
Training: {dataset_name(data["train"]["source"])}, {data["train"]["rows"]} reviews, balance {data["train"]["balance"]};
{data["train"]["dropped_empty"]} empty and {data["train"]["dropped_duplicates"]} duplicate rows dropped before the split.

## Training
Device {training.get("device")} ({training.get("dtype")}), {training.get("steps")} optimizer steps,
{training.get("train_seconds")} s at {training.get("reviews_per_second")} reviews/s; best weights from step
{training.get("best_step")}; stop: {training.get("stop_reason")}.

| hyper-parameter | value |
| --- | --- |
{_hyperparameters(manifest)}
"""


def write_model_card(path: Path, manifest: dict, kind: str, metrics: dict, extra_sections: str = "") -> Path:
    """README.md with Hub metadata, what the folder is and how to use it, the metrics of the model it
    describes, data, hyper-parameters and how it was trained.

    `kind` is the folder's: "run" (a training run's folder), "merged", "adapter" or "onnx". `metrics` may
    say what it was measured on (`measured_on`).
    """
    if kind not in LIBRARY_OF_KIND:
        raise ValueError(f"card kind {kind!r} is not one of {', '.join(LIBRARY_OF_KIND)}")
    path.write_text(front_matter(manifest, kind, metrics) + _body(manifest, kind, metrics) + extra_sections)
    return path
