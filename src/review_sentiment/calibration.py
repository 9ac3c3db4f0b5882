"""Confidence that means what it says: temperature scaling, and the figures that check it (numpy only).

A temperature T divides the logits before the softmax: the predicted label never changes, only how sure
the model says it is. It is fitted (one scalar, by maximum likelihood) on validation logits, stored in the
exported manifest and applied by the scorer everywhere (score-csv, the app, Ray).
"""

from __future__ import annotations

import math

import numpy as np

from .scoring import predicted_classes, probabilities

ECE_BINS = 15
MIN_REVIEWS = 100  # fewer validation reviews than this cannot support a fitted temperature
BRACKET = (1 / 50, 50.0)  # the temperatures searched


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_probs = scaled - np.log(np.exp(scaled).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), np.asarray(labels)].mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 that minimises the negative log-likelihood of softmax(logits / T).

    The likelihood is convex in 1/T, so a golden-section search on log(1/T) finds the one minimum.
    """
    low, high = math.log(1 / BRACKET[1]), math.log(1 / BRACKET[0])
    ratio = (math.sqrt(5) - 1) / 2

    def loss(u: float) -> float:
        return negative_log_likelihood(logits, labels, 1 / math.exp(u))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(80):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(1 / math.exp((low + high) / 2))


def _confidence_and_correct(labels: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=np.float64)
    return probs.max(axis=1), predicted_classes(probs) == np.asarray(labels)


def expected_calibration_error(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over equal-width confidence bins of (share of reviews) × |accuracy − mean confidence|."""
    rows = reliability(labels, probs, bins)
    total = sum(r["count"] for r in rows)
    return float(sum(r["count"] * abs(r["accuracy"] - r["confidence"]) for r in rows) / total) if total else 0.0


def brier_score(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean squared error of the probabilities: (p(positive) − y)² for two classes, Σ over classes beyond."""
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.shape[1] == 2:
        return float(np.mean((probs[:, 1] - labels) ** 2))
    onehot = np.eye(probs.shape[1])[labels]
    return float(np.mean(((probs - onehot) ** 2).sum(axis=1)))


def reliability(labels: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Per confidence bin: its range, how many reviews, their mean confidence and their accuracy."""
    confidence, correct = _confidence_and_correct(labels, probs)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = which == b
        if members.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(members.sum()),
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                }
            )
    return rows


def coverage_table(labels: np.ndarray, probs: np.ndarray, coverages=(1.0, 0.9, 0.8, 0.7)) -> list[dict]:
    """Accuracy on the most confident share of reviews, and the confidence threshold that keeps that share."""
    confidence, correct = _confidence_and_correct(labels, probs)
    order = np.argsort(-confidence, kind="stable")
    rows = []
    for coverage in coverages:
        kept = order[: max(1, math.ceil(coverage * len(order)))]
        rows.append(
            {
                "coverage": coverage,
                "reviews": len(kept),
                "threshold": float(confidence[kept].min()),
                "accuracy": float(correct[kept].mean()),
            }
        )
    return rows


def cross_fitted(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each half of the reviews scaled by the temperature fitted on the other half: honest "after" logits."""
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    halves = np.array_split(np.random.default_rng(0).permutation(len(labels)), 2)
    after = np.empty_like(logits)
    for fit_on, apply_to in ((halves[0], halves[1]), (halves[1], halves[0])):
        after[apply_to] = logits[apply_to] / fit_temperature(logits[fit_on], labels[fit_on])
    return after


def _refusal(logits: np.ndarray, labels: np.ndarray) -> str | None:
    """Why a temperature should not be fitted on these logits, or None."""
    if len(labels) < MIN_REVIEWS:
        return f"too few validation reviews ({len(labels)} < {MIN_REVIEWS})"
    if not np.isfinite(logits).all():
        return "the logits are not all finite"
    if len(np.unique(labels)) < 2:
        return "the validation reviews hold one class only"
    if (predicted_classes(logits) == labels).all():
        return "the model makes no mistake on these reviews, so nothing bounds its confidence"
    return None


def calibrate(logits: np.ndarray, labels: np.ndarray) -> dict:
    """The temperature to serve with, and ECE/Brier before and after, measured honestly: the "after" figures
    are cross-fitted (T fitted on one half of the reviews, measured on the other, both ways).

    The temperature stays 1 (and `reason` says why) when the sample cannot support a fit, when the fit
    lands on the edge of its search range (a separable sample), or when it does not improve the held-out
    likelihood.
    """
    logits, labels = np.asarray(logits, dtype=np.float64), np.asarray(labels)
    result = {"temperature": 1.0, "applied": False, "ece_bins": ECE_BINS, "reviews": len(labels)}
    reason = _refusal(logits, labels)
    if reason is None:
        temperature = fit_temperature(logits, labels)
        after_logits = cross_fitted(logits, labels)
        before_probs, after_probs = probabilities(logits), probabilities(after_logits)
        result.update(
            ece_before=expected_calibration_error(labels, before_probs),
            ece=expected_calibration_error(labels, after_probs),
            brier_before=brier_score(labels, before_probs),
            brier=brier_score(labels, after_probs),
            measured_on=f"{len(labels)} validation reviews; after-calibration figures cross-fitted on two halves",
        )
        if not BRACKET[0] * 1.01 < temperature < BRACKET[1] / 1.01:
            reason = f"the fitted temperature {temperature:.3g} is at the edge of the search range (a separable sample)"
        elif negative_log_likelihood(after_logits, labels) >= negative_log_likelihood(logits, labels):
            reason = "a temperature does not improve the held-out likelihood"
        else:
            result.update(temperature=round(temperature, 4), applied=True)
    if reason:
        result["reason"] = reason
    return result
