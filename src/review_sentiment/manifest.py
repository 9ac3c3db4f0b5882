"""The exported folder's contract: manifest.json (schema, checksums) and where a model comes from
(the bundled default, a local folder, or a Hugging Face Hub id)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from .errors import UserError
from .labels import LABELS, label_problem

log = logging.getLogger(__name__)

DEFAULT_MODEL_DIR = Path(__file__).parent / "default_model"
MANIFEST = "manifest.json"
MODEL_FILE = "model.onnx"
# Every file the runtime reads besides the manifest; each one's sha256 is in the manifest.
RUNTIME_FILES = (MODEL_FILE, "tokenizer.json")
# What `sentiment train` writes beside merged weights and adapters: the contract export reads.
TRAINING_MANIFEST = "training_manifest.json"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model_folder(model: str | Path | None) -> Path:
    """None → the bundled default model; a folder → itself; otherwise a Hub model id, downloaded."""
    if model is None:
        if not (DEFAULT_MODEL_DIR / MANIFEST).exists():
            raise UserError(f"no default model is bundled at {DEFAULT_MODEL_DIR}; pass --model FOLDER")
        return DEFAULT_MODEL_DIR
    path = Path(model)
    if path.exists():
        return path
    if str(model).count("/") != 1 or str(model).startswith((".", "/")):
        raise UserError(f"model folder not found: {model}")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model)))
    except Exception as error:
        raise UserError(
            f"{model} is not a local folder and could not be downloaded from the Hugging Face "
            f"Hub ({type(error).__name__}); pass an exported folder instead"
        ) from error


# What every exported folder's manifest.json holds: key -> type (and allowed values where fixed).
MANIFEST_SCHEMA: dict[str, type | tuple] = {
    "format": str,
    "format_version": int,
    "labels": list,
    "text_spec": dict,
    "base_model": str,
    "quantization": ("none", "int8", "fp16"),
    "optimization": ("none", "O1", "O2", "O3"),
    "opset": int,
    "onnxruntime_version": str,
    "package_version": str,
    "validation_metrics": dict,
    "data": dict,
    "model_file": str,
    "sha256": str,
    "created": str,
}


def validate_manifest(manifest: dict, where: str = MANIFEST) -> dict:
    """Raise a UserError naming every missing or mistyped key; return the manifest unchanged."""
    problems = []
    for key, expected in MANIFEST_SCHEMA.items():
        if key not in manifest:
            problems.append(f"{key} missing")
        elif isinstance(expected, tuple) and manifest[key] not in expected:
            problems.append(f"{key} is {manifest[key]!r}, not one of {', '.join(expected)}")
        elif isinstance(expected, type) and not isinstance(manifest[key], expected):
            problems.append(f"{key} is not a {expected.__name__}")
    temperature = manifest.get("temperature", 1.0)
    if not isinstance(temperature, int | float) or isinstance(temperature, bool) or not temperature > 0:
        problems.append(f"temperature is {temperature!r}, not a positive number")
    spec = manifest.get("text_spec", {})
    if isinstance(spec, dict) and not {"max_length", "truncation"} <= spec.keys():
        problems.append("text_spec needs max_length and truncation")
    problems += _label_problems(manifest.get("labels"), spec)
    if problems:
        raise UserError(f"{where} is not a valid export manifest: {'; '.join(problems)}")
    return manifest


def _label_problems(labels: object, spec: object) -> list[str]:
    """The label list names the logits in order: two or more distinct names, the same in `labels` and in
    `text_spec` (the scorer reads the spec's; a second, different list would name the classes twice)."""
    if not isinstance(labels, list):
        return []  # reported by the schema check
    if problem := label_problem(labels):
        return [problem]
    if isinstance(spec, dict) and "labels" in spec and list(spec["labels"]) != labels:
        return [f"text_spec labels {list(spec['labels'])!r} differ from labels {labels!r}"]
    return []


def read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise UserError(f"{folder} is not an exported model folder (no {MANIFEST}); make one with `sentiment export`")
    try:
        return validate_manifest(json.loads(path.read_text()), str(path))
    except json.JSONDecodeError as error:
        raise UserError(f"{path} is not valid JSON: {error}") from error


def verify_files(folder: Path, manifest: dict) -> None:
    """Every file the runtime reads must match the sha256 the export wrote (a swapped tokenizer.json
    would change every prediction without a word)."""
    expected = manifest.get("files") or {manifest.get("model_file", MODEL_FILE): manifest.get("sha256")}
    if "files" not in manifest:
        log.warning("%s predates per-file checksums: only %s is verified; export it again", folder, MODEL_FILE)
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path} is missing from the exported folder")
        if sha256_of(path) != digest:
            raise UserError(
                f"{path} does not match the sha256 in {MANIFEST}: the file is corrupted or "
                "was changed after export; export it again"
            )


def config_outputs(folder: Path) -> list[str]:
    """The output names of a transformers config.json (id2label, in index order); [] without one."""
    path = folder / "config.json"
    id2label = (json.loads(path.read_text()).get("id2label") or {}) if path.is_file() else {}
    return [str(id2label[key]) for key in sorted(id2label, key=int)]


def is_generic(outputs: list[str]) -> bool:
    """transformers' own names (LABEL_0, LABEL_1, …) for outputs nobody named."""
    return outputs == [f"LABEL_{i}" for i in range(len(outputs))]


def folder_labels(folder: Path) -> tuple[str, ...]:
    """A model folder's label names in class order: its manifest's text spec (an exported folder, or a
    training run's merged/ and adapter/), else the names config.json gives its outputs; a folder that names
    none is of two classes, as every model before labels were recorded."""
    for name in (MANIFEST, TRAINING_MANIFEST):
        spec = json.loads((folder / name).read_text()).get("text_spec") if (folder / name).is_file() else None
        if spec and spec.get("labels"):
            return tuple(str(label) for label in spec["labels"])
    outputs = config_outputs(folder)
    return tuple(outputs) if outputs and not is_generic(outputs) else LABELS
