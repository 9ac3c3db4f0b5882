"""The conversion steps of an export: merge if needed, ONNX with Optimum, optimize, quantize, stage a folder."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..errors import UserError
from ..manifest import MANIFEST, MODEL_FILE, RUNTIME_FILES, TRAINING_MANIFEST, config_outputs, is_generic, sha256_of
from ..text import LABELS

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "config.json")


def merged_folder(model_dir: Path, scratch: Path) -> Path:
    from ..train.modeling import is_adapter_dir, is_merged_dir, merge_adapter_dir

    if not model_dir.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    if is_adapter_dir(model_dir):
        log.info("%s is a LoRA adapter: merging it first", model_dir)
        return merge_adapter_dir(model_dir, scratch / "merged")
    if is_merged_dir(model_dir):
        return model_dir
    raise UserError(f"{model_dir} is neither a merged model folder nor a LoRA adapter folder (no config.json)")


def model_labels(merged: Path, training: dict) -> list[str]:
    """The label names in the order of the model's logits: the training manifest's, checked against the
    merged model's config (id2label), which is what the ONNX graph's outputs come from.

    A manifest written before labels were recorded is a two-label run (negative, positive).
    """
    heads = config_outputs(merged)
    recorded = training.get("text_spec", {}).get("labels")
    labels = [str(name) for name in recorded] if recorded else list(LABELS)
    if heads and len(heads) != len(labels):
        raise UserError(
            f"{merged} has {len(heads)} outputs (config.json id2label {heads}) but its {TRAINING_MANIFEST} "
            f"names {len(labels)} labels {labels}: the folder mixes two runs"
        )
    if heads and not is_generic(heads) and [h.lower() for h in heads] != [name.lower() for name in labels]:
        raise UserError(
            f"{merged}: config.json names the outputs {heads} but {TRAINING_MANIFEST} names them {labels} "
            "(another order, or another run): the labels would be attached to the wrong classes"
        )
    return labels


def onnx_export(merged: Path, out: Path, opset: int | None) -> Path:
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


def optimize(folder: Path, level: str, fp16: bool, out: Path, for_int8: bool = False) -> Path:
    """ORTOptimizer at `level`; for fp16 (GPU serving) with Python fusions only.

    Attention is fused with the raw 0/1 mask: the default mask index (each row's length) would read an
    explanation's occlusion mask, with tokens masked in the middle, as a shorter review. For int8 the fused
    op is MultiHeadAttention, which leaves the query, key and value projections as MatMuls the quantizer
    can reach (Attention packs them into a weight of its own that stays float); LayerNorm and GELU are not fused
    with the additions before them (their fused kernels are slower on int8 graphs), and ONNX Runtime's offline
    optimizer runs its basic level only: its fusions are left to the session that loads the graph, which leaves those
    two out on CPU too.

    Optimum's GPU path runs ONNX Runtime's offline optimizer with `use_gpu=True`, which on a machine
    without CUDA silently optimizes for the CPU provider and can leave CPU-only nodes in a graph meant
    for the GPU. Python fusions (attention, LayerNorm, GELU) are provider-neutral; ONNX Runtime applies
    the provider-specific rest itself when the GPU session loads the graph.
    """
    from dataclasses import replace

    from optimum.onnxruntime import AutoOptimizationConfig, ORTOptimizer

    config = AutoOptimizationConfig.with_optimization_level(level, for_gpu=fp16, fp16=fp16)
    config = replace(config, use_raw_attention_mask=True, use_multi_head_attention=for_int8)
    if fp16:
        config = replace(config, optimization_level=0)
    if for_int8:
        # Not the fusions whose kernels are slower on int8 graphs (providers.CPU_SLOWER_FUSIONS), and ONNX Runtime's
        # basic level only: its level-2 fusions are the loading session's to make.
        config = replace(
            config,
            disable_skip_layer_norm_fusion=True,
            disable_bias_skip_layer_norm_fusion=True,
            disable_bias_gelu_fusion=True,
            optimization_level=min(config.optimization_level, 1),
        )
    ORTOptimizer.from_pretrained(folder, file_names=[MODEL_FILE]).optimize(config, save_dir=out, file_suffix=None)
    return out / MODEL_FILE


def stage_folder(onnx_file: Path, merged: Path, folder: Path, manifest: dict) -> Path:
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
