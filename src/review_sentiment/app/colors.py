"""The colours of what the model said: the explanation's highlights (and their legend), and each class's
bar in the batch chart (whose greys, for rows set aside, are the batch tab's own)."""

from __future__ import annotations

import numpy as np

from ..labels import numeric_values

NOT_READ = "not read"
NOT_READ_COLOR = "#e5e7eb"
STRONG_GREEN, GREEN, RED, STRONG_RED = "#16a34a", "#bbf7d0", "#fecaca", "#dc2626"


def strength_colors(labels: tuple[str, ...]) -> dict[str, str]:
    """Legend categories named after the model's own two labels (green: towards the second), and grey for
    the part of a long review the model does not read.

    With more labels a category names the predicted class (green: towards it, red: away from it); every
    class's four are here, since the component's colours are fixed before any review is seen.
    """
    if len(labels) == 2:
        negative, positive = labels
        return {
            f"strongly {positive}": STRONG_GREEN,
            positive: GREEN,
            negative: RED,
            f"strongly {negative}": STRONG_RED,
            NOT_READ: NOT_READ_COLOR,
        }
    colors = {}
    for label in labels:
        towards, away = direction_words(label)
        colors.update({f"strongly {towards}": STRONG_GREEN, towards: GREEN, away: RED, f"strongly {away}": STRONG_RED})
    return {**colors, NOT_READ: NOT_READ_COLOR}


def direction_words(predicted: str) -> tuple[str, str]:
    """What a positive and a negative weight mean when more than two labels are explained."""
    return f"towards {predicted}", f"away from {predicted}"


# Bars of more than two named classes (no order among them): distinct, and none of them grey.
CLASS_PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777", "#4d7c0f")


def class_colors(labels: tuple[str, ...]) -> dict[str, str]:
    """Each label's colour in charts. Two labels: their strong highlight colours (the review tab's legend).
    More: the highlights mean towards/away from the prediction, not a class, so numbered labels (star
    ratings) run from red to green in their order, and other names take distinct colours."""
    if len(labels) == 2:
        colors = strength_colors(labels)
        return {label: colors[f"strongly {label}"] for label in labels}
    if numeric_values(labels) is not None:
        return dict(zip(labels, _red_to_green(len(labels)), strict=True))
    return {label: CLASS_PALETTE[i % len(CLASS_PALETTE)] for i, label in enumerate(labels)}


def _red_to_green(count: int) -> list[str]:
    """`count` colours evenly spaced from the strong red to the strong green of the highlights."""
    red, green = (np.array([int(c[i : i + 2], 16) for i in (1, 3, 5)]) for c in (STRONG_RED, STRONG_GREEN))
    return ["#" + "".join(f"{round(v):02x}" for v in red + (green - red) * t) for t in np.linspace(0, 1, count)]
