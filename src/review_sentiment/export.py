"""Export a merged (or adapter) model to ONNX with Optimum, optionally optimized and quantized, verified.

int8 (dynamic, ORTQuantizer) is the CPU serving path: ONNX Runtime runs integer kernels on CPU only.
fp16 is the GPU serving path. fp32 runs anywhere and is what the checks compare against.
"""

from __future__ import annotations

import json
import logging
import platform
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from . import __version__
from .errors import UserError
from .metrics import agreement, classification_metrics, predicted_classes, probabilities
from .runtime import MANIFEST, MODEL_FILE, RUNTIME_FILES, Scorer, sha256_of

log = logging.getLogger(__name__)

Quantize = Literal["none", "int8", "fp16"]
Int8Target = Literal["auto", "avx512_vnni", "avx512", "avx2", "arm64"]
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
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")


@dataclass
class ExportConfig:
    model: Path | None = field(
        default=None, metadata={"help": "merged model folder or LoRA adapter folder written by `sentiment train`"}
    )
    output: Path = field(
        default=Path("models/sentiment-onnx"), metadata={"help": "folder to write the exported model to"}
    )
    quantize: Quantize = field(
        default="none",
        metadata={
            "help": "int8: dynamic int8 for CPU serving (ONNX Runtime runs int8 on CPU only); fp16: half precision for GPU serving"
        },
    )
    optimize: Literal["none", "O1", "O2", "O3"] = field(
        default="none",
        metadata={"help": "ORTOptimizer level: O1 basic, O2 + transformer fusions, O3 + GELU approximation"},
    )
    int8_target: Int8Target = field(
        default="auto", metadata={"help": "int8 instruction set to tune for; auto reads this CPU"}
    )
    per_channel: bool = field(
        default=True, metadata={"help": "per-channel int8 weights (more accurate, slightly larger)"}
    )
    opset: int | None = field(
        default=None, metadata={"help": "ONNX opset (default: Optimum's choice for the architecture)"}
    )
    validation_samples: int = field(
        default=500,
        metadata={
            "help": "validation reviews to measure accuracy on, re-created from the training manifest when its data is here; 0 to skip"
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output folder"})

    def __post_init__(self) -> None:
        if self.model is None:
            raise UserError("export needs a MODEL folder (a merged model or a LoRA adapter), or --check FOLDER")
        self.model, self.output = Path(self.model), Path(self.output)
        if self.quantize == "fp16" and self.optimize == "none":
            self.optimize = "O2"  # ONNX Runtime's fp16 conversion runs inside its transformer optimizer


def cpu_int8_target() -> str:
    """The best dynamic-int8 configuration for this CPU (VNNI dot products where present)."""
    machine = platform.machine().lower()
    if machine in ("arm64", "aarch64"):
        return "arm64"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "avx2"
    if "avx512_vnni" in flags or "avx512vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def _merged_folder(model_dir: Path, scratch: Path) -> Path:
    from .modeling import is_adapter_dir, is_merged_dir, merge_adapter_dir

    if not model_dir.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    if is_adapter_dir(model_dir):
        log.info("%s is a LoRA adapter: merging it first", model_dir)
        return merge_adapter_dir(model_dir, scratch / "merged")
    if is_merged_dir(model_dir):
        return model_dir
    raise UserError(f"{model_dir} is neither a merged model folder nor a LoRA adapter folder (no config.json)")


def _onnx_export(merged: Path, out: Path, opset: int | None) -> Path:
    from optimum.exporters.onnx import main_export

    try:
        main_export(
            str(merged),
            output=out,
            task="text-classification",
            opset=opset,
            do_validation=False,
            library_name="transformers",
            local_files_only=True,
        )
    except (ValueError, KeyError, NotImplementedError) as error:
        raise UserError(f"Optimum cannot export {merged} to ONNX: {str(error).splitlines()[0]}") from error
    return out / MODEL_FILE


def _optimize(folder: Path, level: str, fp16: bool, out: Path) -> Path:
    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=fp16, fp16=fp16)
    ORTOptimizer.from_pretrained(folder, file_names=[MODEL_FILE]).optimize(config, save_dir=out, file_suffix=None)
    return out / MODEL_FILE


def _quantize_int8(folder: Path, target: str, per_channel: bool, out: Path) -> Path:
    from optimum.onnxruntime import ORTQuantizer
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    config = getattr(AutoQuantizationConfig, target)(is_static=False, per_channel=per_channel)
    ORTQuantizer.from_pretrained(folder, file_name=MODEL_FILE).quantize(config, save_dir=out, file_suffix=None)
    return out / MODEL_FILE


def _stage_folder(onnx_file: Path, merged: Path, folder: Path, manifest: dict) -> Path:
    """A self-describing folder: model.onnx, tokenizer files, config.json and manifest.json."""
    folder.mkdir(parents=True, exist_ok=True)
    if onnx_file != folder / MODEL_FILE:
        shutil.copy2(onnx_file, folder / MODEL_FILE)
    for name in TOKENIZER_FILES:
        if (merged / name).exists() and not (folder / name).exists():
            shutil.copy2(merged / name, folder / name)
    files = {name: sha256_of(folder / name) for name in RUNTIME_FILES}
    manifest = {**manifest, "model_file": MODEL_FILE, "sha256": files[MODEL_FILE], "files": files}
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return folder


def validation_sample(training: dict, limit: int) -> tuple[list[str], np.ndarray] | None:
    """Up to `limit` reviews of the training run's validation split (cleaned) and their labels, re-created
    from its manifest when that data is on this machine; a fixed, sorted random pick."""
    params = training.get("hyperparameters") or {}
    source = params.get("eval_file") or params.get("dataset")
    if not limit or not source or not Path(source).exists():
        return None
    from .data import load_reviews, training_split

    if params.get("eval_file"):
        reviews = load_reviews(source, "test", params.get("text_column"), params.get("label_column"))
    else:
        reviews = load_reviews(source, "train", params.get("text_column"), params.get("label_column"))
        _, reviews = training_split(reviews, params["val_fraction"], params["seed"], params.get("max_samples"))
    pick = np.sort(np.random.default_rng(0).permutation(len(reviews))[:limit])
    return [reviews.texts[i] for i in pick], reviews.labels[pick]


def torch_reference_logits(merged: Path, scorer: Scorer, texts: list[str]) -> np.ndarray:
    """The merged PyTorch model's logits on exactly the token ids the ONNX scorer feeds."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from .text import clean_text, pad_batch

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
    try:
        scorer = Scorer.load(folder, provider="auto" if manifest["quantization"] == "fp16" else "cpu")
        scorer.logits(texts[:8], cleaned=cleaned)  # warm-up
        started = time.perf_counter()
        logits = scorer.logits(texts, cleaned=cleaned)
        row["ms_per_review"] = 1000 * (time.perf_counter() - started) / max(len(texts), 1)
        row["provider"] = scorer.provider
    except UserError as error:  # fp16 graphs may not run on a CPU-only onnxruntime
        row["error"] = str(error)
        return row
    probs = probabilities(logits)
    if reference is not None:
        row["agreement"] = agreement(predicted_classes(probs), predicted_classes(probabilities(reference)))
        row["max_abs_logit_diff"] = float(np.abs(logits - reference).max())
    if labels is not None:
        metrics = classification_metrics(labels, probs)
        row.update({k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc")})
    return row


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


def export(cfg: ExportConfig) -> Path:
    """Export, optimize, quantize, verify against PyTorch, and write a self-describing folder."""
    import onnxruntime

    from .card import write_model_card
    from .modeling import MANIFEST as TRAINING_MANIFEST

    if cfg.output.exists() and any(cfg.output.iterdir()) and not cfg.overwrite:
        raise UserError(f"output folder {cfg.output} already exists; pass --overwrite to replace it")
    cfg.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cfg.output.parent, prefix=".export-") as tmp:
        scratch = Path(tmp)
        merged = _merged_folder(cfg.model, scratch)
        training_path = merged / TRAINING_MANIFEST
        if not training_path.exists():
            raise UserError(f"{merged} has no {TRAINING_MANIFEST}: export models trained by `sentiment train`")
        training = json.loads(training_path.read_text())
        raw_file = _onnx_export(merged, scratch / "fp32", cfg.opset)
        import onnx

        manifest = {
            "format": "review-sentiment-onnx",
            "format_version": 1,
            "labels": training["text_spec"]["labels"],
            "text_spec": training["text_spec"],
            "base_model": training["base_model"],
            "quantization": "none",
            "optimization": "none",
            "opset": next(
                o.version
                for o in onnx.load(raw_file, load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")
            ),
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
        fp32_dir = _stage_folder(raw_file, merged, scratch / "fp32", manifest)
        sample = validation_sample(training, cfg.validation_samples)
        # Variants are compared on the validation sample (its texts are cleaned already), or on the
        # probes when the training data is not on this machine.
        texts, labels, cleaned = (sample[0], sample[1], True) if sample else (list(PROBES), None, False)
        fp32 = Scorer.load(fp32_dir, provider="cpu")
        torch_logits = torch_reference_logits(merged, fp32, list(PROBES))
        parity = float(np.abs(fp32.logits(list(PROBES)) - torch_logits).max())
        if parity > 1e-4:
            raise UserError(
                f"export failed verification: ONNX fp32 logits differ from PyTorch by {parity:.2e} (> 1e-4)"
            )
        log.info("fp32 ONNX matches PyTorch: max |Δlogit| %.2e on %d probe reviews", parity, len(PROBES))
        fp32_logits = fp32.logits(texts, cleaned=cleaned)
        final_dir = fp32_dir
        if cfg.optimize != "none":
            _optimize(final_dir, cfg.optimize, cfg.quantize == "fp16", scratch / "optimized")
            manifest.update(optimization=cfg.optimize, quantization="fp16" if cfg.quantize == "fp16" else "none")
            final_dir = _stage_folder(scratch / "optimized" / MODEL_FILE, merged, scratch / "optimized", manifest)
        if cfg.quantize == "int8":
            target = cpu_int8_target() if cfg.int8_target == "auto" else cfg.int8_target
            _quantize_int8(final_dir, target, cfg.per_channel, scratch / "int8")
            manifest.update(quantization="int8", int8_target=target, per_channel=cfg.per_channel)
            final_dir = _stage_folder(scratch / "int8" / MODEL_FILE, merged, scratch / "int8", manifest)
        rows = [measure(fp32_dir, texts, labels, fp32_logits, cleaned)]
        if final_dir != fp32_dir:
            rows.append(measure(final_dir, texts, labels, fp32_logits, cleaned))
        print(format_table(rows))
        check = {
            "fp32_vs_pytorch_max_abs_logit_diff": parity,
            "variants": rows,
            "validation_sample": len(labels) if labels is not None else 0,
        }
        _warn_on_accuracy_drop(rows, cfg)
        manifest["export_check"] = check
        manifest["validation_metrics"] = served_metrics(rows[-1], training, labels)
        _stage_folder(final_dir / MODEL_FILE, merged, final_dir, manifest)
        write_model_card(
            final_dir / "README.md", manifest, "onnx", manifest["validation_metrics"], _card_section(manifest, rows)
        )
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


def served_metrics(row: dict, training: dict, labels: np.ndarray | None) -> dict:
    """The validation metrics of the variant this folder serves, saying what they were measured on;
    the training run's fp32 figures (labelled as such) when the validation data was not here."""
    total = training.get("data", {}).get("validation", {}).get("rows", "?")
    if labels is not None and "accuracy" in row:
        return {
            **{k: row[k] for k in ("accuracy", "macro_f1", "roc_auc")},
            "count": len(labels),
            "measured_on": f"{row['variant']} ONNX, {len(labels)} of the {total} validation reviews",
        }
    metrics = training.get("metrics", {})
    return {
        **{k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc", "count") if k in metrics},
        "measured_on": f"fp32 PyTorch at training time, {total} validation reviews; "
        f"the {row['variant']} ONNX variant was not measured (validation data not on the export machine)",
    }


def _warn_on_accuracy_drop(rows: list[dict], cfg: ExportConfig) -> None:
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


def _card_section(manifest: dict, rows: list[dict]) -> str:
    return f"""
## ONNX export
`model.onnx` ({manifest["quantization"] if manifest["quantization"] != "none" else "fp32"}, optimization
{manifest["optimization"]}, opset {manifest["opset"]}), checked with ONNX Runtime {manifest["onnxruntime_version"]}:
fp32 matches PyTorch within {manifest["export_check"]["fp32_vs_pytorch_max_abs_logit_diff"]:.1e} (max |Δlogit|).

```
{format_table(rows)}
```

Score with `score-csv reviews.csv --model THIS_FOLDER` or serve with `sentiment app --model THIS_FOLDER`.
"""


def check(folder: Path) -> dict:
    """Re-verify an exported folder: checksum, manifest, and agreement with its source PyTorch model."""
    scorer = Scorer.load(folder, provider="cpu")
    manifest = scorer.manifest
    row = measure(folder, list(PROBES), None, None)
    source = Path(manifest.get("source_model", ""))
    if source.is_dir():
        scratch = Path(tempfile.mkdtemp(prefix=".check-"))
        try:
            reference = torch_reference_logits(_merged_folder(source, scratch), scorer, list(PROBES))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        row = measure(folder, list(PROBES), None, reference)
        exact = manifest["quantization"] == "none" and manifest["optimization"] == "none"
        if exact and row["max_abs_logit_diff"] > 1e-4:
            raise UserError(
                f"check failed: ONNX logits differ from {source} by {row['max_abs_logit_diff']:.2e} (> 1e-4)"
            )
    else:
        log.info("source model %s is not here: checked integrity and scoring only", source)
    print(format_table([row]))
    return row
