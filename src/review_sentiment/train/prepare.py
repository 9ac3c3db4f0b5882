"""Everything before the first step of a run: the output folder, data, tokens, the model, the optimizer,
and the state of a resumed run."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ..errors import UserError
from ..text import LABELS, ReviewEncoder
from .balance import class_weights, imbalance, oversample
from .checkpoint import load_checkpoint, recover_checkpoint
from .config import RESUME_FREE, TrainConfig, unused_options
from .data import Reviews, run_split
from .modeling import add_lora, load_classifier, load_tokenizer, pick_device, trainable_parameters
from .state import Run, TrainState, dtype_name

log = logging.getLogger(__name__)


def prepare_output(cfg: TrainConfig) -> None:
    """Make the output folder ready: checked against its checkpoint for --resume, else new (or replaced)."""
    has_checkpoint = recover_checkpoint(cfg.output / "checkpoint")
    if cfg.resume:
        if not has_checkpoint:
            raise UserError(f"--resume: no checkpoint in {cfg.output}/checkpoint to resume from")
        saved = json.loads((cfg.output / "checkpoint" / "state.json").read_text())["config"]
        changed = _changed_options(saved, cfg.to_dict())
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


def _changed_options(saved: dict, current: dict) -> list[str]:
    """The options, outside RESUME_FREE, whose value differs from the first run's, as `name (old → new)`.

    An option missing from `saved` was added after the checkpoint was written: that run had its default.
    """
    defaults = TrainConfig.defaults()
    unused = unused_options(current.get("method", "lora"))  # a full run has no LoRA to differ in
    changed = []
    for name, value in current.items():
        if name in unused:
            continue
        recorded = name in saved
        before = saved[name] if recorded else defaults.get(name)
        if name not in RESUME_FREE and before != value and not _same_local_path(before, value):
            note = "" if recorded else "not recorded, so its default "
            changed.append(f"{name} ({note}{before!r} → {value!r})")
    return changed


def _same_local_path(before, value) -> bool:
    """A folder or file the first run recorded relative (older versions did) and this run records absolute."""
    if not (isinstance(before, str) and isinstance(value, str)) or Path(before).is_absolute():
        return False
    return Path(before).exists() and str(Path(before).resolve()) == str(Path(value).resolve())


def resume(run: Run) -> TrainState:
    """The checkpoint's state (weights, optimizer, RNG restored); history rows after it are dropped."""
    cfg = run.cfg
    saved, run.best = load_checkpoint(
        cfg.output / "checkpoint", run.model, run.optimizer, run.scheduler, run.scaler, run.device
    )
    state = TrainState(
        **{**saved, "config": cfg.to_dict(), "amp_dtype": dtype_name(run.amp_dtype), "labels": list(run.labels)}
    )
    history_path = cfg.output / "history.jsonl"
    kept = [line for line in history_path.read_text().splitlines() if json.loads(line)["step"] <= state.step]
    history_path.write_text("".join(line + "\n" for line in kept))
    log.info("resumed from step %d (epoch %d, batch %d)", state.step, state.epoch, state.batch)
    return state


def _load_data(cfg: TrainConfig) -> tuple[Reviews, Reviews]:
    train_set, val_set = run_split(cfg.to_dict())
    log.info(
        "%d classes %s; train %d reviews %s, validation %d reviews %s",
        len(train_set.names), list(train_set.names), len(train_set), train_set.balance(), len(val_set),
        val_set.balance(),
    )  # fmt: skip
    skewed = imbalance(train_set)
    if skewed and cfg.class_weights == "none" and not cfg.oversample:
        log.warning("classes are imbalanced: %s; consider --class-weights auto or --oversample", skewed)
    elif skewed:
        log.info("classes are imbalanced: %s; evened out by %s", skewed, _remedy(cfg))
    missing = [name for name, count in train_set.balance().items() if count == 0]
    if len(missing) >= len(train_set.names) - 1:  # --labels names classes the data may not hold
        present = [name for name in train_set.names if name not in missing]
        raise UserError(f"the training reviews hold one class only ({present}): nothing to learn")
    if missing:
        log.warning("no training review is labelled %s: the model cannot learn to predict it", missing)
    if cfg.oversample:
        train_set = oversample(train_set, cfg.seed)
    return train_set, val_set


def _remedy(cfg: TrainConfig) -> str:
    remedies = ["--oversample"] * cfg.oversample + ["--class-weights auto"] * (cfg.class_weights == "auto")
    return " and ".join(remedies)


def _check_resumed_labels(cfg: TrainConfig, labels: tuple[str, ...]) -> None:
    """Refuse a --resume whose data now makes other classes than the checkpoint's model was built for."""
    saved = json.loads((cfg.output / "checkpoint" / "state.json").read_text()).get("labels", list(LABELS))
    if list(labels) != saved:
        raise UserError(
            f"--resume needs the labels of the first run: the checkpoint's model has {saved}, the data now makes "
            f"{list(labels)}; resume with the data (and --label-column) of the first run, or start a new run"
        )


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype `--precision` asks for on `device`, or None for plain fp32.

    On CUDA: bf16 where the GPU has it natively (compute capability 8.0+), else fp16 (with a loss scaler).
    On CPU: bf16 only where the CPU has native bf16 (AVX512-BF16 or AMX), where it measured faster per
    LoRA step than fp32; elsewhere bf16 is emulated and slower, so fp32.
    """
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        if precision == "fp16" and device.type != "cuda":
            raise UserError("--precision fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    if device.type == "cuda":
        # including_emulation=False: by default torch counts the emulated bf16 of a T4 or V100 as
        # supported, and fp16 with loss scaling is the fast path there.
        return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
    return torch.bfloat16 if _cpu_has_native_bf16() else None


def _cpu_has_native_bf16() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def _unrecorded_autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """What `--precision` resolved to in the code that wrote checkpoints without their dtype: its `auto` took
    bf16 on any GPU where torch counts bf16 as supported, emulation included (a T4 or V100 trained in
    emulated bf16, not fp16); its CPU rule and explicit dtypes were those of `autocast_dtype`."""
    if precision == "auto" and device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return autocast_dtype(device, precision)


def loss_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """Loss scaling for fp16 (whose range underflows small gradients); a disabled no-op otherwise."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


def _resumed_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The dtype the run started with, checked against this device: --resume never changes precision."""
    saved = json.loads((cfg.output / "checkpoint" / "state.json").read_text()).get("amp_dtype")
    if saved is None:  # a checkpoint written before the dtype was recorded: resolved as its code did
        dtype = _unrecorded_autocast_dtype(device, cfg.precision)
        _check_resumable(dtype, device)
        log.warning(
            "the checkpoint does not record its precision: resuming in %s, what the version that wrote it chose "
            "for --precision %s on %s (a run that started on another device may have trained in another one)",
            dtype_name(dtype), cfg.precision, device,
        )  # fmt: skip
        return dtype
    dtype = None if saved == "float32" else getattr(torch, saved)
    _check_resumable(dtype, device)
    log.info(
        "resuming in %s, the precision this run started with (--precision %s is not resolved again on %s)",
        saved, cfg.precision, device,
    )  # fmt: skip
    return dtype


def _check_resumable(dtype: torch.dtype | None, device: torch.device) -> None:
    """Refuse a dtype `device` cannot train in; warn where it can only emulate it (same precision, slower)."""
    on_cuda = device.type == "cuda"
    if dtype == torch.float16 and not on_cuda:
        raise UserError(
            f"this run trained in float16 (with loss scaling), which needs CUDA; it cannot continue on {device}: "
            "resume it on a GPU (--device cuda) or start a new run"
        )
    if dtype != torch.bfloat16:
        return
    if on_cuda and not torch.cuda.is_bf16_supported():
        raise UserError(
            "this run trained in bfloat16, which this GPU cannot run; resume it on a GPU with bf16 "
            "(compute capability 8.0+) or on CPU (--device cpu)"
        )
    if on_cuda and not torch.cuda.is_bf16_supported(including_emulation=False):
        log.warning("this GPU emulates bfloat16: slower than the run was, but in the same precision")
    if not on_cuda and not _cpu_has_native_bf16():
        log.warning(
            "this CPU has no native bfloat16 (AVX512-BF16 or AMX) and emulates it: much slower than fp32, "
            "but in the precision the run started with"
        )


@contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """With `enabled`: deterministic algorithms only (an op without one raises), so a run and its --resume
    on CUDA give bit-identical weights. Restores torch's settings and CUBLAS_WORKSPACE_CONFIG on exit."""
    if not enabled:
        yield
        return
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    previous = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    try:
        if workspace not in (":4096:8", ":16:8"):
            if torch.cuda.is_initialized():
                log.warning("CUDA started before --deterministic could set CUBLAS_WORKSPACE_CONFIG; set it beforehand")
            # cuBLAS reads this when it creates its workspace, at its first call in the process.
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False  # benchmarking may pick a different kernel on each run
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
        torch.backends.cudnn.benchmark = benchmark
        # For what runs after, in this process or a child: cuBLAS itself keeps the workspace it has made.
        if workspace is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = workspace


def setup(cfg: TrainConfig) -> Run:
    """Data, tokens, the model (LoRA-wrapped, or whole), optimizer and schedule: everything `_loop` needs."""
    device = pick_device(cfg.device)
    amp_dtype = _resumed_dtype(cfg, device) if cfg.resume else autocast_dtype(device, cfg.precision)
    train_set, val_set = _load_data(cfg)
    if cfg.resume:
        _check_resumed_labels(cfg, train_set.names)
    tokenizer = load_tokenizer(cfg.base_model)
    encoder = ReviewEncoder(tokenizer.backend_tokenizer, cfg.spec)
    base = load_classifier(cfg.base_model, train_set.names)
    limit = getattr(base.config, "max_position_embeddings", None)
    if limit and cfg.max_length > limit:
        raise UserError(f"--max-length {cfg.max_length} is more than {cfg.base_model} can read ({limit} positions)")
    model = (
        base if cfg.method == "full" else add_lora(base, cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout, cfg.lora_targets)
    ).to(device)
    trainable = trainable_parameters(model)
    share = 100 * trainable / sum(p.numel() for p in model.parameters())
    log.info("device %s, %s; %d trainable parameters (%.2f%%)", device, amp_dtype or torch.float32, trainable, share)
    train_ids = encoder.encode(train_set.texts)
    steps_per_epoch = math.ceil(math.ceil(len(train_ids) / cfg.batch_size) / cfg.grad_accum)
    total_steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer, scheduler = _optimizer(cfg, model, total_steps)
    return Run(
        cfg, model, tokenizer, encoder, train_set, val_set, train_ids, encoder.encode(val_set.texts), device,
        amp_dtype, optimizer, scheduler, loss_scaler(device, amp_dtype),
        _loss(cfg, train_set, device), total_steps,
    )  # fmt: skip


def _optimizer(cfg: TrainConfig, model: torch.nn.Module, total_steps: int):
    """AdamW (no decay on biases and LayerNorm) with linear warm-up, then the schedule `cfg.schedule`."""
    from transformers import get_scheduler

    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    schedule = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}[cfg.schedule]
    warmup = int(cfg.warmup_ratio * total_steps)
    return optimizer, get_scheduler(schedule, optimizer, num_warmup_steps=warmup, num_training_steps=total_steps)


def _loss(cfg: TrainConfig, train_set: Reviews, device: torch.device) -> torch.nn.Module:
    weights = None
    if cfg.class_weights == "auto":
        weights = torch.tensor(class_weights(train_set), dtype=torch.float32, device=device)
        log.info("class weights %s", dict(zip(train_set.names, weights.tolist(), strict=True)))
    return torch.nn.CrossEntropyLoss(weight=weights)
