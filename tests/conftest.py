"""Tiny models and toy reviews built in the fixtures: the whole pipeline runs offline in seconds."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pandas as pd
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(1)  # tiny models gain nothing from threads and lose a lot to contention

POSITIVE = ["great", "wonderful", "loved", "brilliant", "superb", "moving", "delightful", "excellent"]
NEGATIVE = ["awful", "boring", "hated", "terrible", "dull", "clumsy", "tedious", "dreadful"]
NEUTRAL = [
    "the",
    "film",
    "movie",
    "plot",
    "actors",
    "was",
    "and",
    "story",
    "i",
    "it",
    "a",
    "this",
    "ending",
    "music",
    "really",
    "quite",
    "very",
    "scenes",
    "director",
    "cast",
    "of",
    "is",
    "not",
    "but",
]


def toy_reviews(count: int, seed: int = 0) -> pd.DataFrame:
    """Reviews whose sentiment words decide the label: a task the tiny model can learn."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = i % 2
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(3, 12))]
        cue = POSITIVE if label else NEGATIVE
        for _ in range(4):
            words.insert(rng.randrange(len(words) + 1), rng.choice(cue))
        rows.append((" ".join(words).capitalize() + ".", label))
    return pd.DataFrame(rows, columns=["review", "sentiment"])


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A random BERT (2 layers, hidden 32) with a WordPiece vocabulary of the toy words."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list(".,!?'0123456789-=")
    pieces = ["##" + c for c in letters]
    vocab = specials + sorted(set(POSITIVE + NEGATIVE + NEUTRAL) | set(letters)) + pieces
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "reviews.csv"
    toy_reviews(160).to_csv(path, index=False)
    return path


def train_args(base: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--base-model",
        str(base),
        "--dataset",
        str(data),
        "--output",
        str(out),
        "--epochs",
        "10",
        "--batch-size",
        "8",
        "--lr",
        "1e-2",
        "--max-length",
        "48",
        "--eval-every",
        "20",
        "--checkpoint-every",
        "10",
        "--patience",
        "0",
        "--log-every",
        "5",
        "--precision",
        "fp32",
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        *extra,
    ]


@pytest.fixture(scope="session")
def trained_run(tiny_base, toy_csv, tmp_path_factory) -> Path:
    """One finished LoRA run on the tiny model (adapter/, merged/, metrics, plots)."""
    from review_sentiment.cli import main

    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(train_args(tiny_base, toy_csv, out)) == 0
    return out


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory) -> dict[str, Path]:
    """The tiny run exported as fp32 and as int8."""
    from review_sentiment.cli import main

    root = tmp_path_factory.mktemp("exported")
    folders = {}
    for variant in ("none", "int8"):
        folders[variant] = root / variant
        assert (
            main(
                [
                    "export",
                    str(trained_run / "merged"),
                    "--output",
                    str(folders[variant]),
                    "--quantize",
                    variant,
                    "--validation-samples",
                    "40",
                ]
            )
            == 0
        )
    return folders
