"""Classification metrics on numpy arrays, shared by training, evaluation and export (plots: train/report.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .scoring import predicted_classes
from .text import LABELS


def agreement(first: Sequence, second: Sequence) -> float:
    """Share of rows where two runs gave the same label; the runs must cover the same rows."""
    if len(first) != len(second):
        raise ValueError(f"cannot compare {len(first)} labels with {len(second)}: not the same rows")
    return float(np.mean(np.asarray(first) == np.asarray(second))) if len(first) else float("nan")


def label_accuracy(gold: np.ndarray, predicted: Sequence[str], labels: Sequence[str]) -> float:
    """Accuracy of predicted label names against gold class indices (row i against row i)."""
    index = {name: i for i, name in enumerate(labels)}
    unknown = sorted(set(predicted) - index.keys())
    if unknown:
        raise ValueError(f"predicted labels {unknown} are not among {list(labels)}")
    return agreement(np.asarray(gold), [index[name] for name in predicted])


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probs[np.arange(len(labels)), labels].mean())


def roc_points(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_run = np.r_[np.flatnonzero(np.diff(scores)), len(scores) - 1]
    tps = np.cumsum(labels)[last_of_run]
    fps = (last_of_run + 1) - tps
    positives, negatives = max(labels.sum(), 1), max(len(labels) - labels.sum(), 1)
    return np.r_[0.0, fps / negatives], np.r_[0.0, tps / positives]


def area_under(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoid rule (np.trapezoid exists only from NumPy 2, which we do not require)."""
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def classification_metrics(labels: np.ndarray, probs: np.ndarray) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC and the confusion matrix.

    `probs` holds one row of class probabilities per review; rows of the matrix are true labels.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    scores = probs[:, 1]
    predicted = predicted_classes(probs)
    matrix = np.zeros((2, 2), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    per_class = {}
    for i, name in enumerate(LABELS):
        true_pos = matrix[i, i]
        precision = true_pos / max(matrix[:, i].sum(), 1)
        recall = true_pos / max(matrix[i, :].sum(), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(matrix[i, :].sum()),
        }
    both_classes = 0 < labels.sum() < len(labels)
    auc = area_under(*roc_points(labels, scores)) if both_classes else float("nan")
    accuracy = float((predicted == labels).mean())
    return {
        "accuracy": accuracy,
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "macro_precision": float(np.mean([c["precision"] for c in per_class.values()])),
        "macro_recall": float(np.mean([c["recall"] for c in per_class.values()])),
        "roc_auc": auc,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "count": len(labels),
        "majority_share": float(np.bincount(labels, minlength=2).max() / max(len(labels), 1)),
        "warning": learned_nothing_warning(accuracy, labels, auc),
    }


def learned_nothing_warning(accuracy: float, labels: np.ndarray, roc_auc: float) -> str | None:
    """A loud sentence when the model did no better than always answering the majority class."""
    majority = np.bincount(labels, minlength=2).max() / max(len(labels), 1)
    problems = []
    if accuracy < majority + 0.02:
        problems.append(f"accuracy {accuracy:.2%} is within 2 points of the majority class share {majority:.2%}")
    if roc_auc < 0.6:  # NaN (one class only) compares False
        problems.append(f"ROC-AUC {roc_auc:.3f} is below 0.6")
    if not problems:
        return None
    return "the model has not learned the task: " + "; ".join(problems) + " (more data, steps or a higher --lr?)"
