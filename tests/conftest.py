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


THREE_CLASSES = ("negative", "neutral", "positive")


def toy_reviews_3class(count: int, seed: int = 0) -> pd.DataFrame:
    """Three classes the tiny model can learn: positive cue words, negative ones, or none (neutral)."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        label = THREE_CLASSES[i % 3]
        words = [rng.choice(NEUTRAL) for _ in range(rng.randint(4, 12))]
        cue = {"positive": POSITIVE, "negative": NEGATIVE}.get(label, [])
        for _ in range(4 if cue else 0):
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


def assert_same_weights(expected: Path, actual: Path) -> None:
    """Two safetensors files hold the same tensors, bit for bit (a resumed run against an uninterrupted one)."""
    from safetensors.torch import load_file

    want, got = load_file(expected), load_file(actual)
    assert want.keys() == got.keys()
    for name in want:
        assert torch.equal(want[name], got[name]), name


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


@pytest.fixture(scope="session")
def toy_3class_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data3") / "reviews3.csv"
    toy_reviews_3class(240).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained_run_3class(tiny_base, toy_3class_csv, tmp_path_factory) -> Path:
    """One finished LoRA run on three classes (negative, neutral, positive: alphabetical)."""
    from review_sentiment.cli import main

    out = tmp_path_factory.mktemp("runs3") / "tiny3"
    assert main([*train_args(tiny_base, toy_3class_csv, out), "--epochs", "30"]) == 0  # 10 never learns neutral
    return out


@pytest.fixture(scope="session")
def exported_3class(trained_run_3class, tmp_path_factory) -> Path:
    """The three-class run exported as int8."""
    from review_sentiment.cli import main

    folder = tmp_path_factory.mktemp("exported3") / "int8"
    args = ["export", str(trained_run_3class / "merged"), "--output", str(folder), "--quantize", "int8"]
    assert main([*args, "--validation-samples", "60"]) == 0
    return folder


def write_bag_of_words(
    folder: Path, tiny_base: Path, rows: dict[str, tuple[float, ...]], labels: tuple[str, ...], **manifest_extra
) -> Path:
    """An exported folder whose ONNX graph sums a fixed row of logits per token (`rows`; other tokens 0),
    masked tokens left out: logits anyone can write down from a review's words."""
    import json

    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from review_sentiment.manifest import sha256_of

    vocab = (tiny_base / "vocab.txt").read_text().split()
    table = np.array([rows.get(token, (0.0,) * len(labels)) for token in vocab], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["scores"]),
            helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask", "axis"], ["mask3"]),
            helper.make_node("Mul", ["scores", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "reduce_axis"], ["logits"], keepdims=0),
        ],
        "bag_of_words",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(labels)])],
        [
            helper.make_tensor("table", TensorProto.FLOAT, table.shape, table.flatten()),
            helper.make_tensor("axis", TensorProto.INT64, [1], [2]),
            helper.make_tensor("reduce_axis", TensorProto.INT64, [1], [1]),
        ],
    )
    folder.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, folder / "model.onnx")
    (folder / "tokenizer.json").write_bytes((tiny_base / "tokenizer.json").read_bytes())
    manifest = {
        "format": "review-sentiment-onnx",
        "format_version": 1,
        "labels": list(labels),
        "text_spec": {"max_length": 64, "truncation": "head+tail", "labels": list(labels)},
        "base_model": "bag-of-words",
        "quantization": "none",
        "optimization": "none",
        "opset": 17,
        "onnxruntime_version": "test",
        "package_version": "test",
        "validation_metrics": {},
        "data": {},
        "model_file": "model.onnx",
        "sha256": sha256_of(folder / "model.onnx"),
        "files": {name: sha256_of(folder / name) for name in ("model.onnx", "tokenizer.json")},
        "created": "test",
        **manifest_extra,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.fixture(scope="session")
def bag_of_words_model(tiny_base, tmp_path_factory) -> Path:
    """An exported folder whose ONNX graph sums a fixed score per token: +1 positive words, -1 negative."""
    rows = {**{w: (0.0, 1.0) for w in POSITIVE}, **{w: (0.0, -1.0) for w in NEGATIVE}}
    return write_bag_of_words(tmp_path_factory.mktemp("bag-of-words"), tiny_base, rows, ("negative", "positive"))


def skip_without_gpu(reason: str) -> None:
    """Skip a GPU test on a machine without one; fail it where REQUIRE_GPU=1 says there must be one
    (`make test-gpu`), so a GPU run that silently skipped everything cannot pass."""
    if os.environ.get("REQUIRE_GPU"):
        pytest.fail(f"REQUIRE_GPU is set, but {reason}")
    pytest.skip(reason)
