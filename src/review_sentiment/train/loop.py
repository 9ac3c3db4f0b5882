"""LoRA fine-tuning with a plain PyTorch loop: `train(cfg) -> Path`.

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

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..metrics import cross_entropy
from ..scoring import predicted_classes, probabilities
from ..text import ReviewEncoder
from .checkpoint import Stopper, load_checkpoint, recover_checkpoint, save_checkpoint, trainable_state
from .config import RESUME_FREE, TrainConfig
from .data import Reviews, oversample, run_split
from .finish import finish
from .modeling import add_lora, load_classifier, load_tokenizer, pick_device, predict_logits, to_tensors

log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where a run is; saved in every checkpoint (state.json), so --resume continues exactly here."""

    step: int = 0
    epoch: int = 0
    batch: int = 0  # position inside the epoch's batch order
    best_accuracy: float = -1.0
    best_step: int = 0
    stale_evals: int = 0
    train_seconds: float = 0.0  # optimizer time only: evaluation is not counted
    reviews_seen: int = 0
    stop_reason: str = "completed"
    config: dict = field(default_factory=dict)


@dataclass
class Run:
    """What the loop works with, built once by `_setup`."""

    cfg: TrainConfig
    model: torch.nn.Module
    tokenizer: object
    encoder: ReviewEncoder
    train_set: Reviews
    val_set: Reviews
    train_ids: list[list[int]]
    val_ids: list[list[int]]
    device: torch.device
    amp_dtype: torch.dtype | None
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    loss_fn: torch.nn.Module
    total_steps: int
    best: dict | None = None  # trainable weights at the best evaluation so far

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def save_checkpoint(self, state: TrainState) -> None:
        save_checkpoint(
            self.cfg.output / "checkpoint", self.model, self.best, self.optimizer, self.scheduler, self.scaler,
            asdict(state),
        )  # fmt: skip


@dataclass
class Meter:
    """Loss and throughput since the last log line."""

    loss: float = 0.0
    reviews: int = 0
    steps: int = 0
    clock: float = field(default_factory=time.monotonic)


def train(cfg: TrainConfig) -> Path:
    """Fine-tune `cfg.base_model` with LoRA; write adapter/, merged/, metrics, plots and a card."""
    _prepare_output(cfg)
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    run = _setup(cfg)
    state = _resume(run) if cfg.resume else TrainState(config=cfg.to_dict())
    with (cfg.output / "history.jsonl").open("a") as history:
        _loop(run, state, history)
    if state.stop_reason == "completed":
        run.save_checkpoint(state)
    return finish(run, state)


def _loop(run: Run, state: TrainState, history) -> None:
    """Epochs of length-grouped batches until the step budget, early stopping, a time limit or Ctrl-C."""
    cfg = run.cfg
    deadline = time.monotonic() + 60 * cfg.time_limit if cfg.time_limit else None
    tty = sys.stderr.isatty()
    bar = tqdm(total=run.total_steps, initial=state.step, desc="training", unit="step", disable=not tty)
    lengths = np.array([len(s) for s in run.train_ids])
    meter = Meter()
    run.model.train()
    with Stopper() as stopper:
        while state.step < run.total_steps and state.stop_reason == "completed":
            batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed, state.epoch)
            while state.batch < len(batches) and state.step < run.total_steps:
                group = batches[state.batch : state.batch + cfg.grad_accum]
                meter.loss += _optimizer_step(run, group)
                reviews = sum(len(b) for b in group)
                state.step, state.batch, state.reviews_seen = (
                    state.step + 1,
                    state.batch + len(group),
                    state.reviews_seen + reviews,
                )
                meter.reviews, meter.steps = meter.reviews + reviews, meter.steps + 1
                bar.update(1)
                if state.step % cfg.log_every == 0 or state.step == run.total_steps:
                    meter = _log_progress(run, state, meter, history, bar, tty)
                epoch_end = state.batch >= len(batches)
                if (cfg.eval_every and state.step % cfg.eval_every == 0) or epoch_end or state.step == run.total_steps:
                    state.train_seconds += time.monotonic() - meter.clock
                    _evaluate(run, state, history)
                    meter.clock = time.monotonic()
                if epoch_end:
                    state.epoch, state.batch = state.epoch + 1, 0
                if _checkpoint_or_stop(run, state, deadline, stopper, bar) or epoch_end:
                    break  # a stop, or the next epoch with its own shuffled order
    bar.close()


def _optimizer_step(run: Run, group: list[np.ndarray]) -> float:
    """Forward and backward over the group's batches (gradient accumulation), then one optimizer step."""
    group_size = sum(len(b) for b in group)
    total = 0.0
    for index in group:
        inputs = to_tensors([run.train_ids[i] for i in index], run.encoder.pad_id, run.device)
        labels = torch.tensor(run.train_set.labels[index], device=run.device)
        with run.autocast():
            logits = run.model(**inputs).logits
        loss = run.loss_fn(logits.float(), labels) * len(index) / group_size
        run.scaler.scale(loss).backward()
        total += loss.item()
    run.scaler.unscale_(run.optimizer)
    torch.nn.utils.clip_grad_norm_([p for p in run.model.parameters() if p.requires_grad], run.cfg.max_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    run.optimizer.zero_grad(set_to_none=True)
    run.scheduler.step()
    return total


def _log_progress(run: Run, state: TrainState, meter: Meter, history, bar, tty: bool) -> Meter:
    """One history row (and a log line or the progress bar's postfix); returns a fresh meter."""
    now = time.monotonic()
    state.train_seconds += now - meter.clock
    row = {
        "kind": "train",
        "step": state.step,
        "epoch": state.epoch,
        "loss": meter.loss / meter.steps,
        "lr": run.scheduler.get_last_lr()[0],
        "reviews_per_s": meter.reviews / max(now - meter.clock, 1e-9),
    }
    _record(history, row)
    bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", rev_s=f"{row['reviews_per_s']:.1f}")
    if not tty:
        log.info(
            "step %d/%d loss %.4f lr %.2e %.1f reviews/s",
            state.step, run.total_steps, row["loss"], row["lr"], row["reviews_per_s"],
        )  # fmt: skip
    return Meter()


def _evaluate(run: Run, state: TrainState, history) -> None:
    """Validation accuracy now; keeps the best weights, counts evaluations without progress."""
    logits = predict_logits(
        run.model, run.val_ids, run.encoder.pad_id, run.device, run.cfg.eval_batch_size, run.autocast
    )
    accuracy = float((predicted_classes(probabilities(logits)) == run.val_set.labels).mean())
    val_loss = cross_entropy(logits, run.val_set.labels)
    _record(
        history,
        {"kind": "eval", "step": state.step, "epoch": state.epoch, "val_accuracy": accuracy, "val_loss": val_loss},
    )
    log.info("step %d: validation accuracy %.4f", state.step, accuracy)
    if accuracy > state.best_accuracy:
        state.best_accuracy, state.best_step, state.stale_evals = accuracy, state.step, 0
        run.best = trainable_state(run.model)
    else:
        state.stale_evals += 1
    run.model.train()


def _checkpoint_or_stop(run: Run, state: TrainState, deadline: float | None, stopper: Stopper, bar) -> bool:
    """Save a checkpoint when due or stopping; True when the run stops here (Ctrl-C raises instead)."""
    cfg = run.cfg
    stop = None
    if cfg.patience and state.stale_evals >= cfg.patience:
        stop = f"early stopping: no better validation accuracy in {cfg.patience} evaluations"
    elif deadline and time.monotonic() > deadline:
        stop = f"time limit of {cfg.time_limit} minutes reached"
    elif cfg.stop_after_steps and state.step >= cfg.stop_after_steps:
        stop = f"stopped after {cfg.stop_after_steps} steps as asked"
    if stop or stopper.interrupted or state.step % cfg.checkpoint_every == 0:
        run.save_checkpoint(state)
    if stopper.interrupted:
        bar.close()
        raise UserError(f"interrupted at step {state.step}; checkpoint saved, continue with --resume")
    if stop:
        state.stop_reason = stop
        log.warning("%s; finishing with the best weights (step %d)", stop, state.best_step)
    return stop is not None


def _record(history, row: dict) -> None:
    history.write(json.dumps(row) + "\n")
    history.flush()


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


def _resume(run: Run) -> TrainState:
    """The checkpoint's state (weights, optimizer, RNG restored); history rows after it are dropped."""
    cfg = run.cfg
    saved, run.best = load_checkpoint(cfg.output / "checkpoint", run.model, run.optimizer, run.scheduler, run.scaler)
    state = TrainState(**{**saved, "config": cfg.to_dict()})
    history_path = cfg.output / "history.jsonl"
    kept = [line for line in history_path.read_text().splitlines() if json.loads(line)["step"] <= state.step]
    history_path.write_text("".join(line + "\n" for line in kept))
    log.info("resumed from step %d (epoch %d, batch %d)", state.step, state.epoch, state.batch)
    return state


def _load_data(cfg: TrainConfig) -> tuple[Reviews, Reviews]:
    train_set, val_set = run_split(cfg.to_dict())
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
    has native bf16 (AVX512-BF16 or AMX), where it measured faster per LoRA step than fp32;
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


def _setup(cfg: TrainConfig) -> Run:
    """Data, tokens, the LoRA model, optimizer and schedule: everything `_loop` needs."""
    device = pick_device(cfg.device)
    amp_dtype = _amp(device, cfg.precision)
    train_set, val_set = _load_data(cfg)
    tokenizer = load_tokenizer(cfg.base_model)
    encoder = ReviewEncoder(tokenizer.backend_tokenizer, cfg.spec)
    base = load_classifier(cfg.base_model)
    limit = getattr(base.config, "max_position_embeddings", None)
    if limit and cfg.max_length > limit:
        raise UserError(f"--max-length {cfg.max_length} is more than {cfg.base_model} can read ({limit} positions)")
    model = add_lora(base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets).to(device)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    share = 100 * trainable / sum(p.numel() for p in model.parameters())
    log.info("device %s, %s; %d trainable parameters (%.2f%%)", device, amp_dtype or torch.float32, trainable, share)
    train_ids = encoder.encode(train_set.texts)
    steps_per_epoch = math.ceil(math.ceil(len(train_ids) / cfg.batch_size) / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer, scheduler = _optimizer(cfg, model, total_steps)
    return Run(
        cfg, model, tokenizer, encoder, train_set, val_set, train_ids, encoder.encode(val_set.texts), device,
        amp_dtype, optimizer, scheduler, torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16),
        _loss(cfg, train_set, device), total_steps,
    )  # fmt: skip


def _optimizer(cfg: TrainConfig, model: torch.nn.Module, total_steps: int):
    """AdamW (no decay on biases and LayerNorm) with linear warm-up and decay."""
    from transformers import get_linear_schedule_with_warmup

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    return optimizer, get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)


def _loss(cfg: TrainConfig, train_set: Reviews, device: torch.device) -> torch.nn.Module:
    weights = None
    if cfg.class_weights == "auto":
        counts = np.bincount(train_set.labels, minlength=2)
        weights = torch.tensor(len(train_set) / (2 * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    return torch.nn.CrossEntropyLoss(weight=weights)
