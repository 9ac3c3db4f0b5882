"""The training stage: LoRA fine-tuning (`train(cfg) -> Path`), merging, and evaluation. Needs the [train] extra.

Importing this package (or its `config` module, which the CLI reads for --help) does not import
PyTorch; `train` is loaded on first use (`evaluate` lives in train.evaluate).
"""

from __future__ import annotations

from .config import EvaluateConfig, TrainConfig

__all__ = ["EvaluateConfig", "TrainConfig", "train"]


def __getattr__(name: str):
    if name == "train":
        from .loop import train

        return train
    raise AttributeError(name)
