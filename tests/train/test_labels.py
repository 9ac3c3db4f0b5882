"""Training on any set of labels: three classes learned and reported per class, `--labels` order kept from the
data to the model's config and manifest, star ratings in numeric order with their error in stars, and a
value outside the labels refused before anything is trained."""

import json
import logging

import pandas as pd
import pytest

from review_sentiment.cli import main
from review_sentiment.manifest import TRAINING_MANIFEST

from ..conftest import THREE_CLASSES, toy_reviews_3class, train_args

RATINGS = {"negative": "1", "neutral": "3", "positive": "5"}


def _read(run, name: str) -> dict:
    return json.loads((run / name).read_text())


def test_a_three_class_run_learns_and_reports_every_class(trained_run_3class):
    metrics = _read(trained_run_3class, "metrics.json")
    assert metrics["labels"] == list(THREE_CLASSES)
    assert list(metrics["per_class"]) == list(THREE_CLASSES)
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == 3 and all(len(row) == 3 for row in matrix)
    assert sum(map(sum, matrix)) == metrics["count"]
    assert [metrics["per_class"][name]["support"] for name in THREE_CLASSES] == [sum(row) for row in matrix]
    # The tiny model reaches 0.625 here (1.0 with 30 epochs): chance is 1/3.
    assert metrics["accuracy"] >= 0.5 and metrics["roc_auc"] > 0.7 and metrics["warning"] is None
    assert "mean_absolute_error" not in metrics  # names, not numbers: no distance between classes
    manifest = _read(trained_run_3class / "merged", TRAINING_MANIFEST)
    assert manifest["text_spec"]["labels"] == list(THREE_CLASSES)
    assert manifest["hyperparameters"]["labels"] == list(THREE_CLASSES)  # found in the data, recorded for export
    assert manifest["data"]["validation"]["balance"] == dict(zip(THREE_CLASSES, [sum(r) for r in matrix], strict=True))
    config = _read(trained_run_3class / "merged", "config.json")
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    card = (trained_run_3class / "README.md").read_text()
    assert "Sentiment classifier with 3 labels (in output order: negative, neutral, positive)" in card
    assert "Binary" not in card
    for plot in ("confusion_matrix.png", "roc.png", "reliability.png", "training_curves.png"):
        assert (trained_run_3class / plot).stat().st_size > 1000, plot


def test_labels_fix_the_order_from_the_data_to_the_model(tiny_base, toy_3class_csv, tmp_path):
    out = tmp_path / "ordered"
    order = ["positive", "neutral", "negative"]
    assert main(train_args(tiny_base, toy_3class_csv, out, "--labels", ",".join(order), "--epochs", "1")) == 0
    metrics = _read(out, "metrics.json")
    assert metrics["labels"] == order and list(metrics["per_class"]) == order
    manifest = _read(out / "merged", TRAINING_MANIFEST)
    assert manifest["text_spec"]["labels"] == manifest["hyperparameters"]["labels"] == order
    assert manifest["data"]["train"]["labels"] == order
    assert _read(out / "merged", "config.json")["label2id"] == {"positive": 0, "neutral": 1, "negative": 2}
    assert _read(out / "adapter", TRAINING_MANIFEST)["text_spec"]["labels"] == order
    # The matrix's rows follow the order: each class's row holds its own validation reviews.
    support = [sum(row) for row in metrics["confusion_matrix"]]
    assert dict(zip(order, support, strict=True)) == manifest["data"]["validation"]["balance"]
    assert _read(out / "checkpoint", "state.json")["labels"] == order


def test_a_value_outside_labels_stops_the_run_naming_value_and_row(tiny_base, toy_3class_csv, tmp_path, capsys):
    out = tmp_path / "refused"
    assert main(train_args(tiny_base, toy_3class_csv, out, "--labels", "negative,positive")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    # Row 2 of the file (the first under the header is row 1) is the first neutral review.
    assert (
        "label column 'sentiment', row 2: 'neutral' is not one of the labels ['negative', 'positive'] given by --labels"
        in err[-1]
    )
    assert not any("Traceback" in line for line in err)
    assert not out.exists() or not any(out.iterdir())  # no checkpoint, history or model


def test_star_ratings_train_in_numeric_order_with_weights_and_oversampling(tiny_base, tmp_path, caplog, capsys):
    """Ratings 1, 3, 5 (one class rarer): numeric order, the imbalance named, weights per class, and the
    error in stars reported by training, the card and `sentiment evaluate`."""
    data = toy_reviews_3class(240, seed=4)
    data = data[(data["sentiment"] != "neutral") | (data.index % 2 == 0)]  # neutral: half as many
    data = data.assign(stars=data.pop("sentiment").map(RATINGS))
    data.to_csv(tmp_path / "ratings.csv", index=False)
    out = tmp_path / "stars"
    extra = ("--class-weights", "auto", "--oversample", "--epochs", "2")
    with caplog.at_level(logging.INFO):
        assert main(train_args(tiny_base, tmp_path / "ratings.csv", out, *extra)) == 0
    assert "classes are imbalanced: '3' 20% of the training reviews, '1' 40% (2.0x)" in caplog.text
    assert "evened out by --oversample and --class-weights auto" in caplog.text
    assert "class weights {'1': 1.0, '3': 1.0, '5': 1.0}" in caplog.text  # after oversampling, all equal
    metrics = _read(out, "metrics.json")
    assert metrics["labels"] == ["1", "3", "5"]
    assert 0 <= metrics["mean_absolute_error"] <= 4 and 0 <= metrics["within_one_class"] <= 1
    manifest = _read(out / "merged", TRAINING_MANIFEST)
    assert manifest["metrics"]["mean_absolute_error"] == metrics["mean_absolute_error"]
    assert manifest["data"]["train"]["balance"]["3"] == manifest["data"]["train"]["balance"]["1"]  # oversampled
    card = (out / "README.md").read_text()
    assert f"| mean absolute error | {metrics['mean_absolute_error']:.4f} |" in card
    assert "| within one class |" in card and "| ROC-AUC (macro, one-vs-rest) |" in card
    capsys.readouterr()
    assert main(["evaluate", str(out / "merged"), "--output", str(tmp_path / "ev")]) == 0
    printed = capsys.readouterr().out
    assert f"mean absolute error {metrics['mean_absolute_error']:.4f}" in printed
    assert all(f"  {name:<9} precision" in printed for name in ("1", "3", "5"))


def test_evaluate_reads_a_dataset_with_the_models_labels(trained_run_3class, tmp_path, capsys):
    assert main(["evaluate", str(trained_run_3class / "merged"), "--output", str(tmp_path / "own")]) == 0
    trained, again = _read(trained_run_3class, "metrics.json"), _read(tmp_path / "own", "metrics.json")
    assert again["count"] == trained["count"] and again["accuracy"] == pytest.approx(trained["accuracy"])
    assert again["confusion_matrix"] == trained["confusion_matrix"]
    out = capsys.readouterr().out
    assert "ROC-AUC (macro, one-vs-rest)" in out and "  neutral   precision" in out
    positives = toy_reviews_3class(30, seed=9).query("sentiment != 'neutral'")  # a class missing is fine
    positives.to_csv(tmp_path / "two.csv", index=False)
    model, two = str(trained_run_3class / "merged"), str(tmp_path / "two.csv")
    assert main(["evaluate", model, "--dataset", two, "--output", str(tmp_path / "two")]) == 0
    assert _read(tmp_path / "two", "metrics.json")["per_class"]["neutral"]["support"] == 0
    pd.DataFrame({"review": ["fine film", "great"], "sentiment": ["positive", "mixed"]}).to_csv(
        tmp_path / "odd.csv", index=False
    )
    assert main(["evaluate", model, "--dataset", str(tmp_path / "odd.csv"), "--output", str(tmp_path / "odd")]) == 2
    assert "row 2: 'mixed' is not one of the labels ['negative', 'neutral', 'positive']" in capsys.readouterr().err


def test_resume_refuses_other_labels(tiny_base, toy_3class_csv, toy_csv, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_bytes(toy_3class_csv.read_bytes())
    out = tmp_path / "run"
    args = train_args(tiny_base, data, out, "--epochs", "1")
    assert main([*args, "--stop-after-steps", "3"]) == 0
    assert main([*args, "--labels", "positive,neutral,negative", "--resume"]) == 2
    assert "changed: labels (None → 'positive,neutral,negative')" in capsys.readouterr().err
    data.write_bytes(toy_csv.read_bytes())  # the same file now holds two classes
    assert main([*args, "--resume"]) == 2
    assert (
        "--resume needs the labels of the first run: the checkpoint's model has ['negative', 'neutral', 'positive'], "
        "the data now makes ['negative', 'positive']" in capsys.readouterr().err
    )


def test_evaluate_an_exported_three_class_folder_on_its_own_hold_out(trained_run_3class, exported_3class, tmp_path):
    assert main(["evaluate", str(exported_3class), "--output", str(tmp_path / "onnx")]) == 0
    trained, onnx = _read(trained_run_3class, "metrics.json"), _read(tmp_path / "onnx", "metrics.json")
    assert onnx["labels"] == list(THREE_CLASSES) and len(onnx["confusion_matrix"]) == 3
    assert onnx["count"] == trained["count"] and onnx["accuracy"] == pytest.approx(trained["accuracy"], abs=0.05)


def test_labels_naming_classes_the_data_lacks_stop_when_one_class_is_left(tiny_base, toy_csv, tmp_path, capsys):
    data = pd.read_csv(toy_csv)
    one_class = tmp_path / "positive_only.csv"
    data[data["sentiment"] == 1].to_csv(one_class, index=False)
    out = tmp_path / "run"
    assert main(train_args(tiny_base, one_class, out, "--labels", "negative,positive")) == 2
    assert "hold one class only" in capsys.readouterr().err.strip().splitlines()[-1]
