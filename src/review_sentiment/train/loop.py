"""Fine-tuning (LoRA, or every weight with `--method full`) with a plain PyTorch loop: `train(cfg) -> Path`.

Why not `transformers.Trainer`: exact resume (RNG state and position inside the epoch), checkpoints
of the trainable weights only, time-boxed runs and length-grouped batching are each a few lines here, while Trainer
would bring accelerate and callbacks for the same; on CPU and one GPU this loop is as fast.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..metrics import cross_entropy
from ..scoring import predicted_classes, probabilities
from .checkpoint import Stopper, trainable_state
from .config import LOG_SECONDS, TrainConfig
from .finish import finish
from .modeling import predict_logits, to_tensors
from .prepare import deterministic_kernels, prepare_output, resume, setup
from .state import Run, TrainState, dtype_name

log = logging.getLogger(__name__)


@dataclass
class Meter:
    """Loss and throughput since the last log line."""

    loss: float = 0.0
    reviews: int = 0
    steps: int = 0
    clock: float = field(default_factory=lambda: time.monotonic())  # looked up at each call: tests fake it


def train(cfg: TrainConfig) -> Path:
    """Fine-tune `cfg.base_model` (LoRA or full); write adapter/ (LoRA), merged/, metrics, plots and a card."""
    prepare_output(cfg)
    # Before `setup`, which is where CUDA starts: cuBLAS reads its workspace setting once.
    with deterministic_kernels(cfg.deterministic):
        random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        log.info(
            "preparing: reading %s, loading %s, tokenizing the reviews (up to %d tokens each)",
            cfg.dataset, cfg.base_model, cfg.max_length,
        )  # fmt: skip
        started = time.monotonic()
        run = setup(cfg)
        log.info(
            "ready in %.1f s: %d training and %d validation reviews tokenized; %d optimizer steps in all",
            time.monotonic() - started, len(run.train_ids), len(run.val_ids), run.total_steps,
        )  # fmt: skip
        state = (
            resume(run)
            if cfg.resume
            else TrainState(amp_dtype=dtype_name(run.amp_dtype), config=cfg.to_dict(), labels=list(run.labels))
        )
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
    first_step = state.step + 1
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
                if _log_due(run, state, meter, first_step):
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


def _log_due(run: Run, state: TrainState, meter: Meter, first_step: int) -> bool:
    """A progress line now: every --log-every steps, at the run's first and last step (the first says at
    once how fast it goes), and after LOG_SECONDS of training since the last line, whichever comes first."""
    return (
        state.step % run.cfg.log_every == 0
        or state.step in (first_step, run.total_steps)
        or time.monotonic() - meter.clock >= LOG_SECONDS
    )


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
