"""Class balance of the training reviews: how uneven it is, and the two remedies (`--oversample`,
`--class-weights auto`), for any number of classes and, for two, exactly as the two-class code did."""

from __future__ import annotations

import numpy as np

from .data import Reviews

# Largest class over smallest above this is called imbalanced: for two classes, a minority under 40%.
IMBALANCE_RATIO = 1.5


def oversample(reviews: Reviews, seed: int) -> Reviews:
    """Repeat random rows of every smaller class until each is as frequent as the largest.

    A class without any review stays empty: there is nothing to repeat.
    """
    counts = np.bincount(reviews.labels, minlength=len(reviews.names))
    rng = np.random.default_rng(seed)
    extra = [
        rng.choice(np.flatnonzero(reviews.labels == label), size=int(counts.max() - count), replace=True)
        for label, count in enumerate(counts)
        if 0 < count < counts.max()
    ]
    if not extra:
        return reviews
    return reviews.subset(np.concatenate([np.arange(len(reviews)), *extra]))


def class_weights(reviews: Reviews) -> np.ndarray:
    """`--class-weights auto`: one loss weight per class, inverse to its frequency and 1 when all classes are
    equally frequent (rows / (classes × rows of the class)); a class without reviews counts as one."""
    counts = np.bincount(reviews.labels, minlength=len(reviews.names))
    return len(reviews) / (len(reviews.names) * np.maximum(counts, 1))


def imbalance(reviews: Reviews) -> str | None:
    """The smallest and largest class with their shares, when the largest is more than IMBALANCE_RATIO times
    the smallest (for two classes: a minority under 40%); else None."""
    balance = reviews.balance()
    smallest, largest = min(balance, key=balance.get), max(balance, key=balance.get)
    if balance[largest] <= IMBALANCE_RATIO * balance[smallest]:
        return None
    total = max(len(reviews), 1)
    ratio = f"{balance[largest] / balance[smallest]:.1f}x" if balance[smallest] else "no review of the smallest"
    return (
        f"{smallest!r} {balance[smallest] / total:.0%} of the training reviews, {largest!r} "
        f"{balance[largest] / total:.0%} ({ratio})"
    )
