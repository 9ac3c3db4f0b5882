"""Every published figure against an independent computation on a known case."""

import numpy as np
import pytest

from review_sentiment.metrics import classification_metrics
from review_sentiment.scoring import predicted_classes, probabilities


def _probs(positive: np.ndarray) -> np.ndarray:
    return np.stack([1 - positive, positive], axis=1)


def test_accuracy_of_labels_equal_to_the_predictions_is_one_and_the_matrix_counts_by_hand():
    rng = np.random.default_rng(0)
    scores = rng.random(200)
    own = predicted_classes(_probs(scores))
    assert classification_metrics(own, _probs(scores))["accuracy"] == 1.0
    labels = np.array([0, 0, 1, 1, 1])
    metrics = classification_metrics(labels, _probs(np.array([0.2, 0.7, 0.9, 0.4, 0.6])))
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]  # rows true, columns predicted
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["per_class"]["positive"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["negative"]["recall"] == pytest.approx(1 / 2)


def test_roc_auc_equals_the_mann_whitney_statistic():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 300)
    scores = np.round(rng.random(300) * 0.6 + 0.4 * labels, 2)  # rounded: ties included
    positives, negatives = scores[labels == 1], scores[labels == 0]
    greater = (positives[:, None] > negatives[None, :]).sum() + 0.5 * (positives[:, None] == negatives[None, :]).sum()
    expected = greater / (len(positives) * len(negatives))
    assert classification_metrics(labels, _probs(scores))["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_one_label_rule_ties_go_to_the_first_label():
    assert predicted_classes(np.array([[0.5, 0.5], [0.4, 0.6], [0.7, 0.3]])).tolist() == [0, 1, 0]
    assert predicted_classes(probabilities(np.array([[1.0, 1.0]]))).tolist() == [0]


def test_a_model_that_learned_nothing_is_called_out():
    labels = np.array([1] * 60 + [0] * 40)
    constant = classification_metrics(labels, _probs(np.full(100, 0.53)))
    assert constant["accuracy"] == pytest.approx(0.6) and "has not learned" in constant["warning"]
    good = classification_metrics(labels, _probs(labels * 0.8 + 0.1))
    assert good["warning"] is None


def test_agreement_and_label_accuracy_refuse_misaligned_rows():
    from review_sentiment.metrics import agreement, label_accuracy

    gold = np.array([0, 1, 1, 0])
    assert label_accuracy(gold, ["negative", "positive", "negative", "negative"], ("negative", "positive")) == 0.75
    assert agreement(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="not the same rows"):
        label_accuracy(gold, ["negative"] * 11, ("negative", "positive"))  # seven probes too many
    with pytest.raises(ValueError, match="not among"):
        label_accuracy(gold, ["neg", "pos", "pos", "neg"], ("negative", "positive"))


def test_three_class_metrics_against_a_confusion_matrix_counted_by_hand():
    names = ("bad", "neutral", "good")
    labels = np.array([0, 0, 1, 1, 1, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 2, 0])
    probs = np.full((7, 3), 0.2)
    probs[np.arange(7), predicted] = 0.6
    metrics = classification_metrics(labels, probs, names)
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [1, 0, 1]]
    assert metrics["accuracy"] == pytest.approx(4 / 7)
    # neutral: predicted 3 times, 2 right; 3 truly neutral, 2 found
    assert metrics["per_class"]["neutral"]["precision"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["neutral"]["recall"] == pytest.approx(2 / 3)
    f1 = [2 * 0.5 * 0.5 / 1.0, 2 / 3, 2 * 0.5 * 0.5 / 1.0]
    assert metrics["macro_f1"] == pytest.approx(np.mean(f1))
    assert "mean_absolute_error" not in metrics  # names are not numbers: no order to measure along


def test_one_vs_rest_roc_auc_is_the_mean_of_the_per_class_mann_whitney_statistics():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 4, 400)
    probs = probabilities(rng.normal(size=(400, 4)) + 1.5 * np.eye(4)[labels])

    def mann_whitney(members, scores):
        pos, neg = scores[members], scores[~members]
        return ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()) / (
            len(pos) * len(neg)
        )

    expected = np.mean([mann_whitney(labels == i, probs[:, i]) for i in range(4)])
    assert classification_metrics(labels, probs, ("a", "b", "c", "d"))["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_star_ratings_get_mean_absolute_error_in_stars_and_within_one_class():
    names = ("1", "2", "4", "10")  # numeric names: ordered, with gaps
    labels = np.array([0, 1, 2, 3, 3])
    predicted = np.array([0, 2, 2, 2, 0])  # errors: 2→4 (2 stars, 1 class), 10→4 (6, 1), 10→1 (9, 3)
    metrics = classification_metrics(labels, np.eye(4)[predicted], names)
    assert metrics["mean_absolute_error"] == pytest.approx((0 + 2 + 0 + 6 + 9) / 5)
    assert metrics["within_one_class"] == pytest.approx(4 / 5)


def test_macro_figures_average_only_the_classes_that_occur():
    """A class absent from both truth and predictions (declared by --labels, or missing from validation)
    has no precision or recall: counting it as 0 would pull a perfect model's macro F1 to 2/3."""
    labels = np.array([0, 0, 2, 2])
    metrics = classification_metrics(labels, np.eye(3)[labels], ("negative", "neutral", "positive"))
    assert metrics["macro_f1"] == metrics["macro_precision"] == metrics["macro_recall"] == 1.0
    assert metrics["per_class"]["neutral"]["support"] == 0
