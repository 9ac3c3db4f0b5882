"""LoRA fine-tuning with a plain PyTorch loop: `train(cfg) -> Path` and the `evaluate` stage.

Why not `transformers.Trainer`: exact resume (RNG state and position inside the epoch), LoRA-only
checkpoints, time-boxed runs and length-grouped batching are each a few lines here, while Trainer
would bring accelerate and callbacks for the same; on CPU and one GPU this loop is as fast.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import __version__
from .card import write_model_card
from .checkpoint import Stopper, load_checkpoint, load_trainable, recover_checkpoint, save_checkpoint, trainable_state
from .data import Reviews, load_reviews, oversample, stratified_subset, training_split
from .errors import UserError
from .metrics import cross_entropy, plot_training_curves, predicted_classes, probabilities, write_report
from .modeling import (
    add_lora,
    load_classifier,
    load_tokenizer,
    merge,
    pick_device,
    predict_logits,
    save_merged,
    to_tensors,
)
from .text import ReviewEncoder, TextSpec, Truncation

log = logging.getLogger(__name__)
# Options that may change between a run and its --resume without changing the result.
RESUME_FREE = {"resume", "overwrite", "time_limit", "stop_after_steps", "device", "log_every"}


@dataclass
class TrainConfig:
    dataset: str = field(
        metadata={"help": "'imdb' or a Hub dataset id, or a CSV/TSV/Parquet/JSONL file or aclImdb folder"}
    )
    output: Path = field(
        default=Path("runs/sentiment"), metadata={"help": "folder for adapter/, merged/, metrics and plots"}
    )
    base_model: str = field(
        default="bert-base-uncased", metadata={"help": "Hub id or local folder; 'minilm' = bundled offline MiniLM-L6"}
    )
    text_column: str | None = field(default=None, metadata={"help": "text column (detected when omitted)"})
    label_column: str | None = field(default=None, metadata={"help": "label column: 0/1, neg/pos or negative/positive"})
    eval_file: str | None = field(default=None, metadata={"help": "validation data; default: a stratified hold-out"})
    val_fraction: float = field(default=0.1, metadata={"help": "share held out for validation (stratified, seeded)"})
    max_samples: int | None = field(default=None, metadata={"help": "use a stratified random subset of this many rows"})
    max_length: int = field(default=256, metadata={"help": "tokens per review, special tokens included"})
    truncation: Truncation = field(default="head+tail", metadata={"help": "which part of a long review to keep"})
    epochs: float = field(default=3.0, metadata={"help": "passes over the training data (fractions allowed)"})
    batch_size: int = field(default=16, metadata={"help": "reviews per forward pass"})
    grad_accum: int = field(default=1, metadata={"help": "forward passes per optimizer step"})
    lr: float = field(default=3e-4, metadata={"help": "peak learning rate (LoRA wants more than full fine-tuning)"})
    weight_decay: float = field(default=0.01, metadata={"help": "AdamW weight decay"})
    warmup_ratio: float = field(default=0.06, metadata={"help": "share of steps with linear warm-up"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping norm"})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.1, metadata={"help": "dropout on the LoRA path"})
    lora_targets: list[str] | None = field(
        default=None, metadata={"help": "module names to adapt (default per architecture)"}
    )
    class_weights: Literal["none", "auto"] = field(
        default="none", metadata={"help": "'auto' weights the loss by inverse class frequency"}
    )
    oversample: bool = field(default=False, metadata={"help": "repeat minority-class reviews until balanced"})
    eval_every: int = field(
        default=500, metadata={"help": "evaluate every N optimizer steps (and at each epoch end); 0: epoch ends only"}
    )
    eval_batch_size: int = field(default=64, metadata={"help": "reviews per evaluation batch"})
    patience: int = field(default=3, metadata={"help": "stop after N evaluations without a better accuracy; 0: never"})
    checkpoint_every: int = field(default=100, metadata={"help": "save a resumable checkpoint every N optimizer steps"})
    seed: int = field(default=42, metadata={"help": "seed for the split, shuffling, dropout and LoRA init"})
    device: Literal["auto", "cuda", "cpu"] = field(default="auto", metadata={"help": "'auto' uses CUDA when present"})
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        default="auto",
        metadata={
            "help": "autocast dtype; 'auto': bf16 on CUDA (fp16 + loss scaling where bf16 is missing), bf16 on CPUs with native bf16, else fp32"
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue from the output folder's last checkpoint"})
    overwrite: bool = field(default=False, metadata={"help": "replace an existing output folder"})
    time_limit: float | None = field(
        default=None, metadata={"help": "minutes; then finish with the best weights so far (resumable)"}
    )
    stop_after_steps: int | None = field(
        default=None, metadata={"help": "optimizer steps; then finish like --time-limit"}
    )
    log_every: int = field(default=20, metadata={"help": "log training loss every N optimizer steps"})

    def __post_init__(self) -> None:
        self.output = Path(self.output)
        # Later stages re-create the validation split from the manifest, from any working folder.
        for name in ("dataset", "eval_file"):
            value = getattr(self, name)
            if value and Path(value).exists():
                setattr(self, name, str(Path(value).resolve()))
        checks = [
            (0 < self.val_fraction < 0.9, "--val-fraction must be between 0 and 0.9"),
            (self.epochs > 0, "--epochs must be positive"),
            (self.batch_size > 0 and self.grad_accum > 0, "--batch-size and --grad-accum must be positive"),
            (self.lr > 0, "--lr must be positive"),
            (self.lora_r > 0, "--lora-r must be positive"),
            (self.max_samples is None or self.max_samples >= 4, "--max-samples must be at least 4"),
            (self.checkpoint_every >= 1, "--checkpoint-every must be at least 1"),
            (self.log_every >= 1, "--log-every must be at least 1"),
            (self.eval_every >= 0 and self.patience >= 0, "--eval-every and --patience must be 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(message)
        try:
            self.spec = TextSpec(self.max_length, self.truncation)
        except ValueError as error:
            raise UserError(str(error)) from error

    def to_dict(self) -> dict:
        return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}


def length_grouped_batches(lengths: np.ndarray, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Shuffle, sort by length inside windows of 50 batches, then shuffle the batches.

    Similar lengths share a batch, so dynamic padding wastes little; the order depends only on
    (seed, epoch), which is what makes resume exact.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _prepare_output(cfg: TrainConfig) -> None:
    has_checkpoint = recover_checkpoint(cfg.output / "checkpoint")
    if cfg.resume:
        if not has_checkpoint:
            raise UserError(f"--resume: no checkpoint in {cfg.output}/checkpoint to resume from")
        saved = json.loads((cfg.output / "checkpoint" / "state.json").read_text())["config"]
        changed = [
            f"{k} ({saved.get(k)!r} → {v!r})"
            for k, v in cfg.to_dict().items()
            if k not in RESUME_FREE and saved.get(k) != v
        ]
        if changed:
            raise UserError("--resume needs the options of the first run; changed: " + ", ".join(changed))
        return
    if cfg.output.exists() and any(cfg.output.iterdir()):
        if not cfg.overwrite:
            raise UserError(
                f"output folder {cfg.output} already exists; pass --overwrite to replace it or --resume to continue"
            )
        shutil.rmtree(cfg.output)
    cfg.output.mkdir(parents=True, exist_ok=True)


def _load_data(cfg: TrainConfig) -> tuple[Reviews, Reviews]:
    reviews = load_reviews(cfg.dataset, "train", cfg.text_column, cfg.label_column)
    if cfg.eval_file:
        train_set = stratified_subset(reviews, cfg.max_samples, cfg.seed)
        val_set = load_reviews(cfg.eval_file, "test", cfg.text_column, cfg.label_column)
    else:
        train_set, val_set = training_split(reviews, cfg.val_fraction, cfg.seed, cfg.max_samples)
    balance = train_set.balance()
    minority = min(balance.values()) / max(sum(balance.values()), 1)
    log.info("train %d reviews %s, validation %d reviews %s", len(train_set), balance, len(val_set), val_set.balance())
    if minority < 0.4 and cfg.class_weights == "none" and not cfg.oversample:
        log.warning(
            "classes are imbalanced (%.0f%% minority); consider --class-weights auto or --oversample", 100 * minority
        )
    if cfg.oversample:
        train_set = oversample(train_set, cfg.seed)
    return train_set, val_set


def _amp(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    On CUDA: bf16 where supported, else fp16 (with a loss scaler). On CPU: bf16 only where the CPU
    has native bf16 (AVX512-BF16 or AMX), where it measured 1.65x faster per LoRA step than fp32;
    elsewhere bf16 is emulated and slower, so fp32.
    """
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        if precision == "fp16" and device.type != "cuda":
            raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return torch.bfloat16 if native else None


def train(cfg: TrainConfig) -> Path:
    """Fine-tune `cfg.base_model` with LoRA; write adapter/, merged/, metrics, plots and a card."""
    _prepare_output(cfg)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    amp_dtype = _amp(device, cfg.precision)
    train_set, val_set = _load_data(cfg)
    tokenizer = load_tokenizer(cfg.base_model)
    encoder = ReviewEncoder(tokenizer.backend_tokenizer, cfg.spec)
    train_ids, val_ids = encoder.encode(train_set.texts), encoder.encode(val_set.texts)
    lengths = np.array([len(s) for s in train_ids])
    base = load_classifier(cfg.base_model)
    limit = getattr(base.config, "max_position_embeddings", None)
    if limit and cfg.max_length > limit:
        raise UserError(f"--max-length {cfg.max_length} is more than {cfg.base_model} can read ({limit} positions)")
    model = add_lora(base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    model.to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info(
        "device %s, %s; %d trainable parameters (%.2f%%)",
        device,
        amp_dtype or torch.float32,
        trainable,
        100 * trainable / sum(p.numel() for p in model.parameters()),
    )

    batches_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    weights = None
    if cfg.class_weights == "auto":
        counts = np.bincount(train_set.labels, minlength=2)
        weights = torch.tensor(len(train_set) / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights)
    autocast = lambda: torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)  # noqa: E731

    state = {
        "step": 0,
        "epoch": 0,
        "batch": 0,
        "best_accuracy": -1.0,
        "best_step": 0,
        "stale_evals": 0,
        "train_seconds": 0.0,
        "reviews_seen": 0,
        "stop_reason": "completed",
        "config": cfg.to_dict(),
    }
    best = None
    checkpoint_dir = cfg.output / "checkpoint"
    history_path = cfg.output / "history.jsonl"
    if cfg.resume:
        state, best = load_checkpoint(checkpoint_dir, model, optimizer, scheduler, scaler)
        state["config"] = cfg.to_dict()
        kept = [line for line in history_path.read_text().splitlines() if json.loads(line)["step"] <= state["step"]]
        history_path.write_text("".join(line + "\n" for line in kept))
        log.info("resumed from step %d (epoch %d, batch %d)", state["step"], state["epoch"], state["batch"])
    history = history_path.open("a")

    def record(row: dict) -> None:
        history.write(json.dumps(row) + "\n")
        history.flush()

    def evaluate_now() -> None:
        logits = predict_logits(model, val_ids, encoder.pad_id, device, cfg.eval_batch_size, autocast)
        accuracy = float((predicted_classes(probabilities(logits)) == val_set.labels).mean())
        record(
            {
                "kind": "eval",
                "step": state["step"],
                "epoch": state["epoch"],
                "val_accuracy": accuracy,
                "val_loss": cross_entropy(logits, val_set.labels),
            }
        )
        log.info("step %d: validation accuracy %.4f", state["step"], accuracy)
        nonlocal best
        if accuracy > state["best_accuracy"]:
            state.update(best_accuracy=accuracy, best_step=state["step"], stale_evals=0)
            best = trainable_state(model)
        else:
            state["stale_evals"] += 1
        model.train()

    started, deadline = time.monotonic(), None
    if cfg.time_limit:
        deadline = started + 60 * cfg.time_limit
    tty = sys.stderr.isatty()
    bar = tqdm(
        total=total_steps, initial=state["step"], desc="training", unit="step", disable=not tty, dynamic_ncols=True
    )
    model.train()
    running_loss, seen_since_log, steps_since_log, clock = 0.0, 0, 0, time.monotonic()
    with Stopper() as stopper:
        while state["step"] < total_steps:
            batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed, state["epoch"])
            while state["batch"] < len(batches) and state["step"] < total_steps:
                group = batches[state["batch"] : state["batch"] + cfg.grad_accum]
                group_size = sum(len(b) for b in group)
                for index in group:
                    inputs = to_tensors([train_ids[i] for i in index], encoder.pad_id, device)
                    labels = torch.tensor(train_set.labels[index], device=device)
                    with autocast():
                        logits = model(**inputs).logits
                    loss = loss_fn(logits.float(), labels) * len(index) / group_size
                    scaler.scale(loss).backward()
                    running_loss += loss.item()
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                state["step"] += 1
                state["batch"] += len(group)
                state["reviews_seen"] += group_size
                seen_since_log += group_size
                steps_since_log += 1
                bar.update(1)
                if state["step"] % cfg.log_every == 0 or state["step"] == total_steps:
                    now = time.monotonic()
                    state["train_seconds"] += now - clock
                    row = {
                        "kind": "train",
                        "step": state["step"],
                        "epoch": state["epoch"],
                        "loss": running_loss / steps_since_log,
                        "lr": scheduler.get_last_lr()[0],
                        "reviews_per_s": seen_since_log / max(now - clock, 1e-9),
                    }
                    record(row)
                    bar.set_postfix(
                        loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", rev_s=f"{row['reviews_per_s']:.1f}"
                    )
                    if not tty:
                        log.info(
                            "step %d/%d loss %.4f lr %.2e %.1f reviews/s",
                            state["step"],
                            total_steps,
                            row["loss"],
                            row["lr"],
                            row["reviews_per_s"],
                        )
                    running_loss, seen_since_log, steps_since_log, clock = 0.0, 0, 0, time.monotonic()
                epoch_end = state["batch"] >= len(batches)
                if (
                    (cfg.eval_every and state["step"] % cfg.eval_every == 0)
                    or epoch_end
                    or state["step"] == total_steps
                ):
                    state["train_seconds"] += time.monotonic() - clock
                    evaluate_now()
                    clock = time.monotonic()
                if epoch_end:
                    state.update(epoch=state["epoch"] + 1, batch=0)
                stop = None
                if cfg.patience and state["stale_evals"] >= cfg.patience:
                    stop = f"early stopping: no better validation accuracy in {cfg.patience} evaluations"
                elif deadline and time.monotonic() > deadline:
                    stop = f"time limit of {cfg.time_limit} minutes reached"
                elif cfg.stop_after_steps and state["step"] >= cfg.stop_after_steps:
                    stop = f"stopped after {cfg.stop_after_steps} steps as asked"
                if stop or stopper.interrupted or state["step"] % cfg.checkpoint_every == 0:
                    save_checkpoint(checkpoint_dir, model, best, optimizer, scheduler, scaler, state)
                if stopper.interrupted:
                    bar.close()
                    raise UserError(f"interrupted at step {state['step']}; checkpoint saved, continue with --resume")
                if stop:
                    state["stop_reason"] = stop
                    log.warning("%s; finishing with the best weights (step %d)", stop, state["best_step"])
                    break
                if epoch_end:
                    break  # the next epoch gets its own shuffled order
            if state["stop_reason"] != "completed":
                break
    bar.close()
    history.close()
    if state["stop_reason"] == "completed":
        save_checkpoint(checkpoint_dir, model, best, optimizer, scheduler, scaler, state)
    return _finish(cfg, model, tokenizer, encoder, best, state, train_set, val_set, val_ids, device, amp_dtype)


def _finish(
    cfg: TrainConfig,
    model,
    tokenizer,
    encoder: ReviewEncoder,
    best: dict | None,
    state: dict,
    train_set: Reviews,
    val_set: Reviews,
    val_ids: list[list[int]],
    device: torch.device,
    amp_dtype: torch.dtype | None,
) -> Path:
    """Best weights → adapter/, validation report, merged/ (checked against the adapter), card."""
    if best is not None:
        load_trainable(model, best, cfg.output / "checkpoint" / "best.safetensors")
    model.eval()
    adapter_dir = cfg.output / "adapter"
    model.save_pretrained(adapter_dir)
    # Name the base as the user did ('minilm', a Hub id), not this machine's path to it.
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = cfg.base_model
    (adapter_dir / "adapter_config.json").write_text(json.dumps(adapter_config, indent=2))
    tokenizer.save_pretrained(adapter_dir)
    logits = predict_logits(model, val_ids, encoder.pad_id, device, cfg.eval_batch_size)
    metrics = write_report(val_set.labels, probabilities(logits), cfg.output, f"{cfg.base_model} + LoRA, validation")
    if metrics["warning"]:
        log.warning("!!! %s", metrics["warning"])
    metrics["val_loss"] = cross_entropy(logits, val_set.labels)
    plot_training_curves(cfg.output / "history.jsonl", cfg.output / "training_curves.png")

    probe = to_tensors(val_ids[:16], encoder.pad_id, device)
    with torch.inference_mode():
        before = model(**probe).logits.float()
        merged = merge(model)
        after = merged(**probe).logits.float()
    merge_gap = float((before - after).abs().max())
    if merge_gap > 1e-4:
        raise RuntimeError(f"merged logits differ from the adapter's by {merge_gap:.2e} (> 1e-4)")
    training = {
        "device": str(device),
        "dtype": str(amp_dtype or torch.float32).removeprefix("torch."),
        "steps": state["step"],
        "epochs_completed": round(state["reviews_seen"] / max(len(train_set), 1), 3),
        "best_step": state["best_step"],
        "stop_reason": state["stop_reason"],
        "train_seconds": round(state["train_seconds"], 1),
        "reviews_per_second": round(state["reviews_seen"] / max(state["train_seconds"], 1e-9), 2),
        "merge_max_abs_logit_diff": merge_gap,
        "torch_version": torch.__version__,
    }
    metrics["training"] = training
    (cfg.output / "metrics.json").write_text(json.dumps(metrics, indent=2))
    manifest = {
        "text_spec": cfg.spec.to_dict(),
        "base_model": cfg.base_model,
        "data": {
            "train": train_set.describe(),
            "validation": val_set.describe(),
            "split": f"eval file {cfg.eval_file}"
            if cfg.eval_file
            else f"stratified {cfg.val_fraction:.0%} hold-out, seed {cfg.seed}"
            + (f", from a stratified subset of {cfg.max_samples}" if cfg.max_samples else ""),
        },
        "metrics": {k: metrics[k] for k in ("accuracy", "macro_f1", "roc_auc", "val_loss", "count", "warning")},
        "training": training,
        "hyperparameters": {k: v for k, v in cfg.to_dict().items() if k not in RESUME_FREE},
        "package_version": __version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (adapter_dir / "training_manifest.json").write_text(json.dumps(manifest, indent=2))
    save_merged(merged, tokenizer, cfg.output / "merged", manifest)
    card_metrics = {**manifest["metrics"], "measured_on": f"fp32 PyTorch, all {len(val_set)} validation reviews"}
    for folder in (cfg.output, cfg.output / "merged"):
        write_model_card(folder / "README.md", manifest, "transformers", card_metrics)
    log.info(
        "validation accuracy %.4f (macro F1 %.4f, ROC-AUC %.4f); %.1f reviews/s on %s; wrote %s",
        metrics["accuracy"],
        metrics["macro_f1"],
        metrics["roc_auc"],
        training["reviews_per_second"],
        device,
        cfg.output,
    )
    return cfg.output
