"""`--method full` (every weight trained, no adapter) and `--schedule`: the comparison runs of the trials
table (benchmarks/bench_trials.py) go through these paths."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from review_sentiment.cli import main
from review_sentiment.train.config import FULL_LR, LORA_LR, TrainConfig

from ..conftest import assert_same_weights, train_args

LORA_ONLY = {"--lora-r", "--lora-alpha"}


def full_args(base, data, out, *extra: str) -> list[str]:
    """The tiny run's options, LoRA's own left out, with a rate that suits training every weight."""
    args = train_args(base, data, out)
    kept = [a for i, a in enumerate(args) if a not in LORA_ONLY and args[i - 1] not in LORA_ONLY]
    return [*kept, "--method", "full", "--lr", "1e-3", *extra]


@pytest.fixture(scope="module")
def full_run(tiny_base, toy_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "full"
    assert main(full_args(tiny_base, toy_csv, out)) == 0
    return out


def test_full_fine_tuning_trains_every_weight_and_writes_a_plain_model(full_run, tiny_base):
    from transformers import AutoModelForSequenceClassification

    assert not (full_run / "adapter").exists()
    metrics = json.loads((full_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9
    merged = AutoModelForSequenceClassification.from_pretrained(full_run / "merged")
    assert metrics["training"]["method"] == "full"
    assert metrics["training"]["trainable_parameters"] == sum(p.numel() for p in merged.parameters())
    assert metrics["training"]["merge_max_abs_logit_diff"] is None
    base = load_file(tiny_base / "model.safetensors")
    trained = load_file(full_run / "merged" / "model.safetensors")
    name = next(n for n in trained if n.endswith("encoder.layer.0.attention.self.query.weight"))
    assert not torch.equal(trained[name], base[name.removeprefix("bert.")])  # the encoder itself moved
    manifest = json.loads((full_run / "merged" / "training_manifest.json").read_text())
    assert manifest["hyperparameters"]["method"] == "full" and manifest["hyperparameters"]["lr"] == 1e-3


def test_full_run_cards_say_what_was_trained(full_run):
    for folder in (full_run, full_run / "merged"):
        card = (folder / "README.md").read_text()
        assert "full fine-tuning" in card and "lora" not in card.lower()  # no LoRA tag, option or wording


def test_a_full_run_exports_and_scores(full_run, tmp_path):
    out = tmp_path / "onnx"
    assert main(["export", str(full_run / "merged"), "--output", str(out), "--validation-samples", "40"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["validation_metrics"]["accuracy"] >= 0.9


def test_a_full_run_resumes_to_the_same_weights(tiny_base, toy_csv, full_run, tmp_path):
    out = tmp_path / "resumed"
    assert main(full_args(tiny_base, toy_csv, out, "--stop-after-steps", "37")) == 0
    assert main(full_args(tiny_base, toy_csv, out, "--resume")) == 0
    assert_same_weights(full_run / "merged" / "model.safetensors", out / "merged" / "model.safetensors")


def test_lora_options_with_full_are_refused(tiny_base, toy_csv, tmp_path, capsys):
    args = [*train_args(tiny_base, toy_csv, tmp_path / "out"), "--method", "full"]
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "error: --lora-r, --lora-alpha apply only to --method lora; --method full trains every weight"
    )
    assert not (tmp_path / "out").exists()
    # Given at its LoRA default, an option is still given, and still refused.
    assert main([*full_args(tiny_base, toy_csv, tmp_path / "out"), "--lora-dropout", "0.1"]) == 2
    assert "error: --lora-dropout applies only to --method lora" in capsys.readouterr().err


def test_the_default_learning_rate_follows_the_method():
    assert TrainConfig(dataset="imdb").lr == LORA_LR
    assert TrainConfig(dataset="imdb", method="full").lr == FULL_LR
    assert TrainConfig(dataset="imdb", method="full", lr=2e-5).lr == 2e-5


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("linear", lambda progress: 1 - progress),
        ("cosine", lambda progress: 0.5 * (1 + math.cos(math.pi * progress))),
        ("constant", lambda progress: 1.0),
    ],
)
def test_the_schedule_after_warm_up(schedule, expected):
    from review_sentiment.train.prepare import _optimizer

    cfg = TrainConfig(dataset="imdb", schedule=schedule, lr=1e-3, warmup_ratio=0.1)
    optimizer, scheduler = _optimizer(cfg, torch.nn.Linear(2, 2), total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[5] == pytest.approx(1e-3 * 5 / 10)  # warm-up: linear from 0 over the first 10 steps
    for step in (10, 55, 82):
        assert rates[step] == pytest.approx(1e-3 * expected((step - 10) / 90)), step
