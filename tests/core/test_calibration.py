"""Temperature scaling and the calibration figures, each against a case whose answer is known."""

import numpy as np
import pytest

from review_sentiment.calibration import (
    brier_score,
    calibrate,
    coverage_table,
    expected_calibration_error,
    fit_temperature,
    reliability,
)
from review_sentiment.scoring import predicted_classes, probabilities


def _overconfident(temperature: float, count: int = 20000, seed: int = 0, classes: int = 2):
    """Labels drawn from softmax(z); the model reports z × T, i.e. is over-confident by T."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 2.5, size=(count, classes))
    cumulative = probabilities(true_logits).cumsum(axis=1)
    labels = (rng.random((count, 1)) > cumulative).sum(axis=1)  # one draw per review from its distribution
    return true_logits * temperature, np.minimum(labels, classes - 1)


@pytest.mark.parametrize("classes", [2, 3, 5])
@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.0, 3.5])
def test_fitting_recovers_a_known_temperature(temperature, classes):
    logits, labels = _overconfident(temperature, classes=classes)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_expected_calibration_error_of_a_hand_made_case():
    # Bin 0.9–0.967: four reviews at 0.9 confidence, three right → |0.75 − 0.9| = 0.15, weight 4/6.
    # Bin 0.6–0.667: two reviews at 0.6 confidence, one right → |0.5 − 0.6| = 0.1, weight 2/6.
    probs = np.array([[0.1, 0.9]] * 4 + [[0.4, 0.6]] * 2)
    labels = np.array([1, 1, 1, 0, 1, 0])
    assert expected_calibration_error(labels, probs) == pytest.approx(4 / 6 * 0.15 + 2 / 6 * 0.1)
    bins = reliability(labels, probs)
    assert [b["count"] for b in bins] == [2, 4] and bins[1]["accuracy"] == pytest.approx(0.75)


def test_brier_score_of_a_hand_made_case():
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    labels = np.array([1, 1, 0])
    assert brier_score(labels, probs) == pytest.approx((0.2**2 + 0.6**2 + 0.5**2) / 3)
    three = np.array([[0.7, 0.2, 0.1]])
    assert brier_score(np.array([0]), three) == pytest.approx(0.3**2 + 0.2**2 + 0.1**2)


def test_coverage_table_keeps_the_most_confident_reviews():
    probs = np.array([[0.05, 0.95], [0.9, 0.1], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([1, 0, 0, 1])  # the two most confident are right, the 0.7 one is wrong
    rows = {r["coverage"]: r for r in coverage_table(labels, probs, (1.0, 0.5, 0.75))}
    assert rows[0.5]["accuracy"] == 1.0 and rows[0.5]["threshold"] == pytest.approx(0.9)
    assert rows[0.75]["reviews"] == 3 and rows[0.75]["accuracy"] == pytest.approx(2 / 3)
    assert rows[1.0]["accuracy"] == pytest.approx(0.75)


def test_calibration_lowers_the_error_of_an_overconfident_model_and_never_changes_a_label():
    logits, labels = _overconfident(3.0, count=4000)
    result = calibrate(logits, labels)
    assert result["temperature"] == pytest.approx(3.0, rel=0.1)
    assert result["ece"] < result["ece_before"] / 3 and result["brier"] < result["brier_before"]
    scaled = probabilities(logits / result["temperature"])
    assert (predicted_classes(scaled) == predicted_classes(probabilities(logits))).all()


def test_calibration_refuses_what_cannot_support_a_temperature():
    logits, labels = _overconfident(2.0, count=60)
    assert calibrate(logits, labels)["reason"].startswith("too few validation reviews (60 < 100)")
    separable = np.stack([-np.arange(200.0), np.arange(200.0)], axis=1) - [[-100, 100]]
    perfect = calibrate(separable, (separable[:, 1] > separable[:, 0]).astype(int))
    assert perfect["temperature"] == 1.0 and "no mistake" in perfect["reason"]
    broken = np.array(logits.tolist() * 2)
    broken[0, 0] = np.nan
    assert calibrate(broken, np.r_[labels, labels])["reason"] == "the logits are not all finite"
    good = calibrate(*_overconfident(2.0, count=400))
    assert good["applied"] and good["temperature"] == pytest.approx(2.0, rel=0.2) and "reason" not in good


def test_calibration_of_more_classes_uses_the_one_hot_brier_score():
    logits, labels = _overconfident(2.5, count=3000, classes=4)
    result = calibrate(logits, labels)
    assert result["applied"] and result["temperature"] == pytest.approx(2.5, rel=0.1)
    probs = probabilities(logits)
    onehot = np.eye(4)[labels]
    assert result["brier_before"] == pytest.approx(np.mean(((probs - onehot) ** 2).sum(axis=1)))
    assert result["ece"] < result["ece_before"] and result["brier"] < result["brier_before"]
