"""Classification metrics on numpy arrays, shared by training, evaluation and export (plots: train/report.py)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .labels import numeric_values
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


def classification_metrics(labels: np.ndarray, probs: np.ndarray, names: Sequence[str] = LABELS) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, ROC-AUC and the confusion matrix.

    `probs` holds one row of class probabilities per review, columns in the order of `names`; rows of
    the matrix are true labels. Macro figures average the classes that occur among the true or the
    predicted labels (a class in neither has no precision or recall to average; scikit-learn's rule).
    With more than two classes ROC-AUC is the macro mean of one-vs-rest areas (over the classes present);
    when every name is a number (star ratings) the mean absolute error (in the labels' own units) and the
    share predicted the true class or one next to it in the label order (`within_one_class`) are added.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    classes = len(names)
    predicted = predicted_classes(probs)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (labels, predicted), 1)
    per_class = {name: _class_scores(matrix, i) for i, name in enumerate(names)}
    seen = [c for i, c in enumerate(per_class.values()) if matrix[i].sum() or matrix[:, i].sum()]
    auc = roc_auc(labels, probs)
    accuracy = float((predicted == labels).mean())
    metrics = {
        "accuracy": accuracy,
        "macro_f1": float(np.mean([c["f1"] for c in seen])) if seen else float("nan"),
        "macro_precision": float(np.mean([c["precision"] for c in seen])) if seen else float("nan"),
        "macro_recall": float(np.mean([c["recall"] for c in seen])) if seen else float("nan"),
        "roc_auc": auc,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
        "count": len(labels),
        "majority_share": float(np.bincount(labels, minlength=classes).max() / max(len(labels), 1)),
        "warning": learned_nothing_warning(accuracy, labels, auc),
    }
    numbers = numeric_values(names) if classes > 2 else None
    if numbers is not None:
        values = np.asarray(numbers)
        metrics["mean_absolute_error"] = float(np.abs(values[predicted] - values[labels]).mean())
        metrics["within_one_class"] = float((np.abs(predicted - labels) <= 1).mean())
    return metrics


def _class_scores(matrix: np.ndarray, i: int) -> dict:
    true_pos = matrix[i, i]
    precision = true_pos / max(matrix[:, i].sum(), 1)
    recall = true_pos / max(matrix[i, :].sum(), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1), "support": int(matrix[i].sum())}


def roc_auc(labels: np.ndarray, probs: np.ndarray) -> float:
    """Two classes: the area under the ROC curve of the second class's probability. More: the mean of the
    one-vs-rest areas of the classes that occur and do not make up every row. NaN when there is none."""
    areas = []
    for i in range(1, 2) if probs.shape[1] == 2 else range(probs.shape[1]):
        members = (labels == i).astype(np.int64)
        if 0 < members.sum() < len(labels):
            areas.append(area_under(*roc_points(members, probs[:, i])))
    return float(np.mean(areas)) if areas else float("nan")


def learned_nothing_warning(accuracy: float, labels: np.ndarray, roc_auc: float) -> str | None:
    """A loud sentence when the model did no better than always answering the majority class."""
    majority = np.bincount(labels).max() / len(labels) if len(labels) else 0.0
    problems = []
    if accuracy < majority + 0.02:
        problems.append(f"accuracy {accuracy:.2%} is within 2 points of the majority class share {majority:.2%}")
    if roc_auc < 0.6:  # NaN (one class only) compares False
        problems.append(f"ROC-AUC {roc_auc:.3f} is below 0.6")
    if not problems:
        return None
    return "the model has not learned the task: " + "; ".join(problems) + " (more data, steps or a higher --lr?)"
