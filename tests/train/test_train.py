import json

import pytest
import torch
from safetensors.torch import load_file

from review_sentiment.cli import main
from review_sentiment.text import ReviewEncoder, TextSpec
from review_sentiment.train.modeling import load_adapter, merge

from ..conftest import assert_same_weights, toy_reviews, train_args


def test_run_writes_every_artifact(trained_run):
    for name in (
        "adapter/adapter_config.json",
        "adapter/adapter_model.safetensors",
        "merged/model.safetensors",
        "merged/tokenizer.json",
        "merged/training_manifest.json",
        "metrics.json",
        "history.jsonl",
        "confusion_matrix.png",
        "roc.png",
        "training_curves.png",
        "reliability.png",
        "coverage.png",
        "README.md",
    ):
        assert (trained_run / name).is_file(), name
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["calibration"]["temperature"] > 0 and metrics["coverage"][0]["coverage"] == 1.0
    assert metrics["coverage"][0]["accuracy"] == pytest.approx(metrics["accuracy"])  # all reviews kept
    config = json.loads((trained_run / "merged" / "config.json").read_text())
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    card = (trained_run / "README.md").read_text()
    assert card.startswith("---\nlicense: apache-2.0") and "pipeline_tag: text-classification" in card


def test_loss_falls_and_the_toy_task_is_learned(trained_run):
    rows = [json.loads(line) for line in (trained_run / "history.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert sum(losses[-3:]) < 0.5 * sum(losses[:3])
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.9
    assert metrics["training"]["device"] == "cpu" and metrics["training"]["reviews_per_second"] > 0
    assert set(metrics["per_class"]) == {"negative", "positive"}


def test_merged_model_equals_adapter_model_and_has_no_lora_left(trained_run):
    adapter = load_adapter(trained_run / "adapter")
    encoder = ReviewEncoder.from_file(trained_run / "merged" / "tokenizer.json", TextSpec(48))
    ids = encoder.encode(["great film", "the plot was awful and boring"])
    from review_sentiment.train.modeling import to_tensors

    batch = to_tensors(ids, encoder.pad_id, torch.device("cpu"))
    with torch.inference_mode():
        before = adapter(**batch).logits
        merged = merge(adapter)
        after = merged(**batch).logits
    assert torch.allclose(before, after, atol=1e-4)
    assert not [n for n, _ in merged.named_modules() if "lora" in n.lower()]


def test_resume_reproduces_the_uninterrupted_run(tiny_base, toy_csv, trained_run, tmp_path):
    out = tmp_path / "resumed"
    assert main(train_args(tiny_base, toy_csv, out, "--stop-after-steps", "37")) == 0
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 37
    assert main(train_args(tiny_base, toy_csv, out, "--resume")) == 0
    assert_same_weights(
        trained_run / "adapter" / "adapter_model.safetensors", out / "adapter" / "adapter_model.safetensors"
    )
    assert (out / "history.jsonl").read_text().count('"kind": "eval"') == (
        trained_run / "history.jsonl"
    ).read_text().count('"kind": "eval"')


def test_merge_command_is_a_no_op_on_merged_output(trained_run, capsys):
    assert main(["merge", str(trained_run / "merged")]) == 0
    assert capsys.readouterr().out.strip() == str(trained_run / "merged")


def test_evaluate_writes_metrics_and_plots(trained_run, tmp_path, capsys):
    data = tmp_path / "labelled.parquet"
    toy_reviews(40, seed=3).to_parquet(data)
    assert (
        main(["evaluate", str(trained_run / "merged"), "--dataset", str(data), "--output", str(tmp_path / "ev")]) == 0
    )
    out = capsys.readouterr().out
    assert "accuracy" in out and "coverage  threshold  accuracy" in out
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert (tmp_path / "ev" / "reliability.png").is_file() and (tmp_path / "ev" / "coverage.png").is_file()
    assert metrics["count"] == 40 and metrics["accuracy"] >= 0.85
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 1000


def test_evaluate_without_a_dataset_uses_the_runs_own_validation_split(trained_run, exported, tmp_path):
    """Train, export and evaluate re-create the split through one function: the same reviews, so the
    same figure as training's own report (torch), and the same count through the ONNX folder."""
    trained = json.loads((trained_run / "metrics.json").read_text())
    assert main(["evaluate", str(trained_run / "merged"), "--output", str(tmp_path / "torch")]) == 0
    again = json.loads((tmp_path / "torch" / "metrics.json").read_text())
    assert again["count"] == trained["count"]
    assert again["accuracy"] == pytest.approx(trained["accuracy"])
    assert main(["evaluate", str(exported["none"]), "--output", str(tmp_path / "onnx")]) == 0
    onnx = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    assert onnx["count"] == trained["count"] and onnx["accuracy"] == pytest.approx(trained["accuracy"], abs=0.03)


def test_evaluate_a_run_folder_evaluates_its_merged_model(trained_run, tmp_path, capsys):
    assert main(["evaluate", str(trained_run), "--output", str(tmp_path / "run")]) == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["accuracy"] == pytest.approx(
        json.loads((trained_run / "metrics.json").read_text())["accuracy"]
    )
    (tmp_path / "empty").mkdir()
    (tmp_path / "unfinished" / "checkpoint").mkdir(parents=True)
    (tmp_path / "reviews.csv").write_text("review,sentiment\ngood,1\n")
    for path, message in [
        ("empty", "empty holds no model"),
        ("unfinished", "unfinished is a training run that has not finished"),
        ("reviews.csv", "reviews.csv is a file, not a model folder"),
    ]:
        assert main(["evaluate", str(tmp_path / path)]) != 0
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "{tmp}/missing.csv"], "error: file not found: {tmp}/missing.csv"),
        (["--base-model", "no-such-org/no-such-model"], "could not be fetched from the Hugging Face Hub"),
        (["--text-column", "body"], "text column 'body' not found; columns are: review, sentiment"),
        (["--output", "{existing}"], "already exists; pass --overwrite to replace it or --resume to continue"),
        (["--resume"], "--resume: no checkpoint in {tmp}/out/checkpoint"),
        (["--max-length", "4"], "max_length must be between 8 and 4096"),
        (["--max-length", "512"], "--max-length 512 is more than"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1"),
        (["--log-every", "0"], "--log-every must be at least 1"),
    ],
)
def test_errors_are_one_clear_line(tiny_base, toy_csv, tmp_path, capsys, extra, message):
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "file").write_text("x")
    fill = lambda s: s.format(tmp=tmp_path, existing=existing)  # noqa: E731
    # argparse keeps the last occurrence of a repeated option, so the extras override the defaults.
    assert main(train_args(tiny_base, toy_csv, tmp_path / "out") + [fill(a) for a in extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert fill(message) in err[-1]
    assert not any("Traceback" in line for line in err)


def test_a_kill_between_the_checkpoint_renames_loses_nothing(tiny_base, toy_csv, trained_run, tmp_path):
    out = tmp_path / "killed"
    assert main(train_args(tiny_base, toy_csv, out, "--stop-after-steps", "37")) == 0
    # save_checkpoint moves the previous checkpoint aside before renaming the new one into place:
    # a kill in between leaves only checkpoint.old.
    (out / "checkpoint").rename(out / "checkpoint.old")
    assert main(train_args(tiny_base, toy_csv, out, "--resume")) == 0
    assert_same_weights(
        trained_run / "adapter" / "adapter_model.safetensors", out / "adapter" / "adapter_model.safetensors"
    )


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tiny_base, toy_csv, tmp_path, capsys):
    from safetensors.torch import save_file

    out = tmp_path / "renamed"
    assert main(train_args(tiny_base, toy_csv, out, "--stop-after-steps", "10")) == 0
    weights = load_file(out / "checkpoint" / "trainable.safetensors")
    save_file(
        {k.replace("lora_A", "lora_down"): v for k, v in weights.items()}, out / "checkpoint" / "trainable.safetensors"
    )
    assert main(train_args(tiny_base, toy_csv, out, "--resume")) == 2
    assert "does not fit this model" in capsys.readouterr().err


def test_a_run_that_learned_nothing_says_so(tiny_base, toy_csv, tmp_path, caplog):
    out = tmp_path / "nothing"
    assert main(train_args(tiny_base, toy_csv, out, "--lr", "1e-9", "--epochs", "1")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert "has not learned the task" in metrics["warning"]
    assert "has not learned the task" in (out / "README.md").read_text()
    assert "!!! the model has not learned" in caplog.text
