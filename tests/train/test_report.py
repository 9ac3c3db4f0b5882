"""The report's figures for any number of classes: a confusion matrix that stays readable at ten classes, and
one-vs-rest ROC curves that leave out (and say so) a class the reviews do not hold."""

import json

import matplotlib
import numpy as np
import pytest

from review_sentiment.errors import UserError
from review_sentiment.train.report import write_report

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _probs(labels: np.ndarray, classes: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(labels), classes))
    logits[np.arange(len(labels)), labels] += 2.0
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.fixture
def captured(monkeypatch):
    """The figures the report saves, kept open for the test to read."""
    figures = {}
    monkeypatch.setattr(
        "review_sentiment.train.report._save", lambda _plt, fig, path: figures.setdefault(path.name, fig) and path
    )
    yield figures
    for fig in figures.values():
        plt.close(fig)


def test_ten_star_classes_give_a_readable_matrix_and_a_curve_per_class(tmp_path, captured):
    names = [str(star) for star in range(1, 11)]
    labels = np.random.default_rng(1).integers(0, 10, 300)
    metrics = write_report(labels, _probs(labels, 10), tmp_path, "ten", names=names)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["labels"] == names and np.array(saved["confusion_matrix"]).shape == (10, 10)
    assert list(saved["per_class"]) == names and saved["mean_absolute_error"] >= 0 and saved["within_one_class"] <= 1
    matrix = captured["confusion_matrix.png"]
    assert matrix.get_size_inches()[0] > 8  # grown from the two-class 4.8 inches
    ax = matrix.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    cells = [t for t in ax.texts]
    assert len(cells) == 100 and min(t.get_fontsize() for t in cells) >= 7
    assert cells[0].get_text().startswith(f"{metrics['confusion_matrix'][0][0]}\n(")
    roc = captured["roc.png"].axes[0]
    assert len([line for line in roc.get_lines() if line.get_label() != "chance"]) == 10
    assert "one class" not in roc.get_title() and "macro AUC" in roc.get_title()


def test_a_class_the_reviews_lack_has_no_curve_and_the_title_says_so(tmp_path, captured):
    names = ["negative", "neutral", "positive"]
    labels = np.array([0, 2] * 20)
    write_report(labels, _probs(labels, 3), tmp_path, "no neutral", names=names)
    roc = captured["roc.png"].axes[0]
    assert sorted(line.get_label().split()[0] for line in roc.get_lines()) == ["chance", "negative", "positive"]
    assert "no curve for neutral: in none or all of the reviews" in roc.get_title()
    matrix = captured["confusion_matrix.png"].axes[0]
    assert [t.get_text() for t in matrix.get_yticklabels()] == names


def test_two_classes_keep_the_single_roc_curve(tmp_path, captured):
    labels = np.array([0, 1] * 20)
    metrics = write_report(labels, _probs(labels, 2), tmp_path, "binary")
    roc = captured["roc.png"].axes[0]
    assert [line.get_label() for line in roc.get_lines()] == [f"model (AUC {metrics['roc_auc']:.3f})", "chance"]
    assert captured["confusion_matrix.png"].get_size_inches()[0] == pytest.approx(4.8)
    assert "mean_absolute_error" not in metrics and metrics["labels"] == ["negative", "positive"]


def test_scores_that_do_not_match_the_labels_are_refused(tmp_path):
    with pytest.raises(UserError, match=r"3 class scores for 2 labels"):
        write_report(np.array([0, 1]), np.full((2, 3), 1 / 3), tmp_path, "mismatch")
