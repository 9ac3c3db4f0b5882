"""Resumable checkpoints of a LoRA run: trainable weights, best weights, optimizer and RNG state."""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

log = logging.getLogger(__name__)


class Stopper:
    """Turns Ctrl-C into a clean stop at the next optimizer step, with a checkpoint."""

    def __init__(self) -> None:
        self.interrupted = False
        self._previous = None

    def __enter__(self) -> Stopper:
        self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, *_) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        log.warning("interrupt received: saving a checkpoint at the next step (press again to abort)")

    def __exit__(self, *_) -> None:
        signal.signal(signal.SIGINT, self._previous)


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone().cpu() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(folder: Path, model, best: dict | None, optimizer, scheduler, scaler, state: dict) -> None:
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file(trainable_state(model), tmp / "trainable.safetensors")
    if best is not None:
        save_file(best, tmp / "best.safetensors")
    torch.save(
        {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "python_rng": list(random.getstate()[1])}, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)  # atomic: a crash leaves either the old or the new checkpoint


def load_checkpoint(folder: Path, model, optimizer, scheduler, scaler) -> tuple[dict, dict | None]:
    model.load_state_dict(load_file(folder / "trainable.safetensors"), strict=False)
    saved = torch.load(folder / "optimizer.pt", weights_only=True)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["torch_rng"])
    if saved["cuda_rng"]:
        torch.cuda.set_rng_state_all(saved["cuda_rng"])
    state = json.loads((folder / "state.json").read_text())
    random.setstate((3, tuple(state.pop("python_rng")), None))
    best = load_file(folder / "best.safetensors") if (folder / "best.safetensors").exists() else None
    return state, best
