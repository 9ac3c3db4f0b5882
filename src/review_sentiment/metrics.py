"""Classification metrics and the plots that show them; numpy and matplotlib only."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .text import LABELS


def probabilities(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def predicted_classes(probs: np.ndarray) -> np.ndarray:
    """The label rule, written once: the most probable class; a tie goes to the first label.

    Every stage (training's evaluation, export's check, score-csv, the app, Ray) decides through this.
    """
    return np.asarray(probs).argmax(axis=-1)


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(metrics: dict, path: Path, title: str) -> Path:
    plt = _pyplot()
    matrix = np.array(metrics["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    ax.imshow(matrix, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        share = count / max(matrix[row].sum(), 1)
        ax.text(
            col,
            row,
            f"{count}\n({share:.1%})",
            ha="center",
            va="center",
            color="white" if count > matrix.max() / 2 else "black",
            fontsize=11,
        )
    ax.set_xticks([0, 1], LABELS)
    ax.set_yticks([0, 1], LABELS)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\naccuracy {metrics['accuracy']:.2%} on {metrics['count']} reviews", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_roc(labels: np.ndarray, scores: np.ndarray, auc: float, path: Path, title: str) -> Path:
    plt = _pyplot()
    fpr, tpr = roc_points(np.asarray(labels), np.asarray(scores, dtype=np.float64))
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"ROC — {title}", fontsize=10)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_training_curves(history_path: Path, path: Path) -> Path:
    """Training loss and learning rate by step, validation accuracy at each evaluation."""
    plt = _pyplot()
    rows = [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]
    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], label="train loss")
    if evals:
        loss_ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="validation loss")
        acc_ax.plot([r["step"] for r in evals], [r["val_accuracy"] for r in evals], "o-", color="tab:green")
    loss_ax.set_xlabel("optimizer step")
    loss_ax.set_title("loss")
    loss_ax.legend()
    acc_ax.set_xlabel("optimizer step")
    acc_ax.set_title("validation accuracy")
    acc_ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(labels: np.ndarray, probs: np.ndarray, out_dir: Path, title: str) -> dict:
    """metrics.json, confusion_matrix.png and roc.png in `out_dir`; returns the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = classification_metrics(labels, probs)
    scores = np.asarray(probs)[:, 1]
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics, out_dir / "confusion_matrix.png", title)
    plot_roc(labels, scores, metrics["roc_auc"], out_dir / "roc.png", title)
    return metrics
