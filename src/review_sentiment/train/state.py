"""What a training run is made of (`Run`) and where it is (`TrainState`, saved in every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..text import LABELS, ReviewEncoder
from .checkpoint import save_checkpoint
from .config import TrainConfig
from .data import Reviews


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
    # The autocast dtype --precision resolved to on the first run's device; --resume reuses it, since
    # 'auto' can resolve differently on another device and the run would then change precision midway.
    amp_dtype: str = "float32"
    config: dict = field(default_factory=dict)
    # The classes the model was built for; a checkpoint written before they were recorded is of two classes.
    labels: list[str] = field(default_factory=lambda: list(LABELS))


def dtype_name(dtype: torch.dtype | None) -> str:
    """'float32' (no autocast), 'bfloat16' or 'float16': how state.json and metrics.json name a dtype."""
    return str(dtype or torch.float32).removeprefix("torch.")


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

    @property
    def labels(self) -> tuple[str, ...]:
        """The run's label names in class order (the training data's, which the validation reviews share)."""
        return self.train_set.names

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    def save_checkpoint(self, state: TrainState) -> None:
        save_checkpoint(
            self.cfg.output / "checkpoint", self.model, self.best, self.optimizer, self.scheduler, self.scaler,
            asdict(state), self.device,
        )  # fmt: skip
