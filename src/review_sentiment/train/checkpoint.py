"""Resumable checkpoints of a run: trainable weights (LoRA's, or all of them), best weights, optimizer and RNG state."""

from __future__ import annotations

import json
import logging
import random
import shutil
import signal
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import UserError

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


def save_checkpoint(
    folder: Path, model, best: dict | None, optimizer, scheduler, scaler, state: dict, device: torch.device
) -> None:
    """Write a complete checkpoint to `folder`, replacing the previous one only once the new one is whole."""
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
            # Only the generator of the GPU that trained: a state per visible GPU cannot be restored
            # on a host that sees fewer of them, and the others drew nothing for this run.
            "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        },
        tmp / "optimizer.pt",
    )
    (tmp / "state.json").write_text(json.dumps({**state, "python_rng": list(random.getstate()[1])}, indent=2))
    # Two renames, never a delete before the new checkpoint is in place: a kill at any point leaves a
    # complete checkpoint at `folder`, or at `folder.old` (which `recover_checkpoint` puts back).
    old = _previous(folder)
    shutil.rmtree(old, ignore_errors=True)
    if folder.exists():
        folder.rename(old)
    tmp.rename(folder)
    shutil.rmtree(old, ignore_errors=True)


def _previous(folder: Path) -> Path:
    return folder.with_name(folder.name + ".old")


def recover_checkpoint(folder: Path) -> bool:
    """Put back the previous checkpoint if a kill came between save's two renames; True if one exists."""
    if not (folder / "state.json").exists() and (_previous(folder) / "state.json").exists():
        shutil.rmtree(folder, ignore_errors=True)
        _previous(folder).rename(folder)
        log.warning("the last checkpoint save was interrupted: using the one before it")
    return (folder / "state.json").exists()


def load_trainable(model, weights: dict[str, torch.Tensor], source: Path) -> None:
    """Load saved trainable weights, refusing any mismatch of names (a peft upgrade that renamed
    layers must not silently continue from fresh LoRA weights)."""
    expected = {name for name, p in model.named_parameters() if p.requires_grad}
    missing, unexpected = sorted(expected - weights.keys()), sorted(weights.keys() - expected)
    if missing or unexpected:
        raise UserError(
            f"{source} does not fit this model: {len(missing)} trainable weights missing "
            f"({', '.join(missing[:3])}), {len(unexpected)} unexpected ({', '.join(unexpected[:3])}); "
            "were peft or the base model changed since the run started?"
        )
    model.load_state_dict(weights, strict=False)


def load_checkpoint(
    folder: Path, model, optimizer, scheduler, scaler, device: torch.device
) -> tuple[dict, dict | None]:
    """Restore weights, optimizer, schedule, loss scale and RNG from `folder` onto `device`, which may differ
    from the device that wrote it; returns (state.json without the RNG, best weights or None)."""
    load_trainable(model, load_file(folder / "trainable.safetensors"), folder / "trainable.safetensors")
    # map_location: a checkpoint written on CUDA must load on a CPU-only host; the optimizer moves its
    # state onto the parameters' device in load_state_dict.
    saved = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _load_scaler(scaler, saved["scaler"])
    torch.set_rng_state(saved["torch_rng"])
    _restore_cuda_rng(saved["cuda_rng"], device)
    state = json.loads((folder / "state.json").read_text())
    random.setstate((3, tuple(state.pop("python_rng")), None))
    best = load_file(folder / "best.safetensors") if (folder / "best.safetensors").exists() else None
    return state, best


def _load_scaler(scaler: torch.amp.GradScaler, state: dict) -> None:
    """A disabled scaler saves `{}`, which an enabled one refuses to load: load only a real state."""
    if state:
        scaler.load_state_dict(state)
    elif scaler.is_enabled():
        log.warning("the checkpoint has no loss-scaler state (it was not trained in fp16): loss scaling starts afresh")


def _restore_cuda_rng(state: torch.Tensor | list | None, device: torch.device) -> None:
    """Put back the CUDA generator of the training GPU, when this run trains on CUDA too."""
    if isinstance(state, list):  # older checkpoints saved every visible GPU's; `cuda` trained on the first
        state = state[0] if state else None
    if state is None:
        if device.type == "cuda":
            log.warning("the checkpoint was written on CPU: CUDA random numbers (dropout) start from the seed")
        return
    if device.type != "cuda":
        log.warning(
            "the checkpoint was written on CUDA: its CUDA RNG state is not restored on %s, so dropout draws "
            "(and the result) differ from an uninterrupted run",
            device,
        )
        return
    torch.cuda.set_rng_state(state, device)
