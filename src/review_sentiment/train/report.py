"""The plots that show a model's metrics (matplotlib): confusion matrix, ROC curve, training curves."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..calibration import ECE_BINS, brier_score, coverage_table, expected_calibration_error, reliability
from ..errors import UserError
from ..metrics import area_under, classification_metrics, roc_points
from ..text import LABELS


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _tick_name(name: str, limit: int = 16) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def plot_confusion(metrics: dict, path: Path, title: str, names: Sequence[str] = LABELS) -> Path:
    """Counts (and each row's shares) per true × predicted class, coloured by the row's share, so a small class's
    recall reads as clearly as a large one's. The figure grows with the classes, and the text shrinks."""
    plt = _pyplot()
    matrix = np.array(metrics["confusion_matrix"])
    classes = len(names)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(4.8, 0.7 * classes + 2.4)
    fig, ax = plt.subplots(figsize=(side, side * 0.875), dpi=120)
    ax.imshow(shares, cmap="Blues", vmin=0.0, vmax=1.0)
    font = 11 if classes <= 3 else max(7, 12 - classes // 2)
    for (row, col), count in np.ndenumerate(matrix):
        # Beyond a dozen classes a cell has room for its count only.
        text = f"{count}\n({shares[row, col]:.1%})" if classes <= 12 else f"{count}"
        color = "white" if shares[row, col] > 0.5 else "black"
        ax.text(col, row, text, ha="center", va="center", color=color, fontsize=font)
    ticks = [_tick_name(name) for name in names]
    rotate = classes > 2 and max(len(t) for t in ticks) > 3
    ax.set_xticks(range(classes), ticks, rotation=45 if rotate else 0, ha="right" if rotate else "center")
    ax.set_yticks(range(classes), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (colour: share of the row)" if classes > 2 else "true")
    ax.set_title(f"{title}\naccuracy {metrics['accuracy']:.2%} on {metrics['count']} reviews", fontsize=10)
    return _save(plt, fig, path)


def plot_roc(labels: np.ndarray, probs: np.ndarray, auc: float, path: Path, title: str, names=LABELS) -> Path:
    """Two classes: the ROC curve of the second class's probability. More: one one-vs-rest curve per class
    that occurs in `labels` without making up all of them (the classes the macro ROC-AUC averages)."""
    plt = _pyplot()
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    binary = len(names) == 2
    fig, ax = plt.subplots(figsize=(4.8, 4.2) if binary else (6.4, 5.2), dpi=120)
    heading = f"ROC — {title}"
    if binary:
        fpr, tpr = roc_points(labels, probs[:, 1])
        ax.plot(fpr, tpr, label=f"model (AUC {auc:.3f})")
    else:
        heading = f"ROC, each class against the rest (macro AUC {auc:.3f})\n{title}"
        left_out = []
        for i, name in enumerate(names):
            members = (labels == i).astype(np.int64)
            if not 0 < members.sum() < len(labels):
                left_out.append(_tick_name(name))
                continue
            fpr, tpr = roc_points(members, probs[:, i])
            ax.plot(fpr, tpr, label=f"{_tick_name(name)} (AUC {area_under(fpr, tpr):.3f})")
        if left_out:  # a class in none (or all) of the reviews has no curve, and no part in the macro AUC
            heading += f"\nno curve for {', '.join(left_out)}: in none or all of the reviews"
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(heading, fontsize=10 if binary else 9)
    ax.legend(loc="lower right", fontsize=None if binary else 8)
    return _save(plt, fig, path)


def read_history(history_path: Path) -> list[dict]:
    """The rows of a run's history.jsonl: `train` rows (loss, lr, throughput) and `eval` rows."""
    return [json.loads(line) for line in history_path.read_text().splitlines() if line.strip()]


def training_curves_figure(rows: list[dict], classes: int = 2):
    """Loss by step (training and validation) and validation accuracy, from history rows.

    Made for short runs too: every logged point is marked (one point is no line), the step axes start
    at 0 (a lone step 12 is not the whole axis), and accuracy runs from chance (1 / `classes`) to 100%.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    train = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(9, 3.6), dpi=120)
    loss_ax.plot([r["step"] for r in train], [r["loss"] for r in train], "o-", markersize=3, label="training loss")
    loss_ax.plot(
        [r["step"] for r in evals], [r["val_loss"] for r in evals], "s--", markersize=6, label="validation loss"
    )
    accuracies = [r["val_accuracy"] for r in evals]
    acc_ax.plot([r["step"] for r in evals], accuracies, "o-", markersize=6, color="tab:green")
    last_step = max((r["step"] for r in rows), default=0)
    for ax in (loss_ax, acc_ax):
        ax.set_xlim(0, max(last_step, 1) * 1.05 + 0.5)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    # Limits from finite values only: a diverged run's NaN loss would make matplotlib refuse them.
    losses = [v for v in [r["loss"] for r in train] + [r["val_loss"] for r in evals] if np.isfinite(v)]
    loss_ax.set_ylim(0, max(losses, default=1.0) * 1.15 or 1.0)
    acc_ax.set_ylim(min([1 / classes, *[a for a in accuracies if np.isfinite(a)]]) - 0.05, 1.02)
    acc_ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    loss_ax.set_title("loss")
    acc_ax.set_title("validation accuracy")
    loss_ax.legend()
    if not rows:
        loss_ax.text(0.5, 0.5, "no step logged", transform=loss_ax.transAxes, ha="center")
    return fig


def plot_training_curves(history_path: Path, path: Path, classes: int = 2) -> Path:
    """training_curves.png: `training_curves_figure` of the run's history.jsonl."""
    plt = _pyplot()
    return _save(plt, training_curves_figure(read_history(history_path), classes), path)


def plot_reliability(labels: np.ndarray, curves: dict[str, np.ndarray], path: Path, title: str) -> Path:
    """Accuracy against confidence per bin, one curve per set of probabilities (e.g. before/after calibration)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    chance = 1 / np.asarray(next(iter(curves.values()))).shape[1]  # the lowest confidence a prediction can have
    ax.plot([chance, 1], [chance, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for name, probs in curves.items():
        bins = reliability(labels, probs)
        ece = expected_calibration_error(labels, probs)
        ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-", label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel(f"confidence ({ECE_BINS} bins)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Reliability — {title}", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    return _save(plt, fig, path)


def plot_coverage(labels: np.ndarray, probs: np.ndarray, path: Path, title: str) -> Path:
    """Accuracy on the most confident share of reviews, from all of them down to a tenth."""
    plt = _pyplot()
    rows = coverage_table(labels, probs, tuple(np.linspace(1.0, 0.1, 19)))
    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    ax.plot([r["coverage"] for r in rows], [r["accuracy"] for r in rows], "o-")
    ax.invert_xaxis()
    ax.set_xlabel("coverage (share of reviews kept, most confident first)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs coverage — {title}", fontsize=10)
    return _save(plt, fig, path)


def write_report(
    labels: np.ndarray,
    probs: np.ndarray,
    out_dir: Path,
    title: str,
    calibrated: np.ndarray | None = None,
    names: Sequence[str] = LABELS,
) -> dict:
    """metrics.json, confusion_matrix.png, roc.png, reliability.png and coverage.png in `out_dir`.

    `names`: the label names, in the order of `probs`' columns. `calibrated`: the same reviews' probabilities
    after temperature scaling, drawn beside the raw ones. The metrics include the label names, ECE and Brier
    score and the accuracy at 100/90/80/70% coverage.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    names = tuple(names)
    if np.asarray(probs).shape[1] != len(names):
        raise UserError(
            f"the model gives {np.asarray(probs).shape[1]} class scores for {len(names)} labels {list(names)}"
        )
    metrics = {"labels": list(names), **classification_metrics(labels, probs, names)}
    served = probs if calibrated is None else calibrated
    metrics["ece"] = expected_calibration_error(labels, served)
    metrics["brier"] = brier_score(labels, served)
    metrics["coverage"] = coverage_table(labels, served)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    plot_confusion(metrics, out_dir / "confusion_matrix.png", title, names)
    plot_roc(labels, probs, metrics["roc_auc"], out_dir / "roc.png", title, names)
    curves = {"model": probs} if calibrated is None else {"before calibration": probs, "after": calibrated}
    plot_reliability(labels, curves, out_dir / "reliability.png", title)
    plot_coverage(labels, served, out_dir / "coverage.png", title)
    return metrics
