"""A hand-made three-class model for the batch tests: its logits can be written down from a review's words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import NEGATIVE, POSITIVE, THREE_CLASSES, write_bag_of_words

NEUTRAL_LOGIT = 0.5  # what a review without cue words scores for "neutral" (and 0 for the other two)


def three_class_logits(text: str) -> np.ndarray:
    """The logits the graph below gives a review, counted from its words without the tokenizer or ONNX:
    (negative cue words, NEUTRAL_LOGIT, positive cue words)."""
    words = [w.strip(".,!?'").lower() for w in text.split()]
    return np.array(
        [sum(w in NEGATIVE for w in words), NEUTRAL_LOGIT, sum(w in POSITIVE for w in words)], dtype=np.float64
    )


@pytest.fixture(scope="session")
def three_class_model(tiny_base, tmp_path_factory) -> Path:
    """An exported folder whose graph counts cue tokens into logits [batch, 3]: +1 to negative for each
    negative word, +1 to positive for each positive word, and a constant bias for neutral."""
    rows = {**{w: (1.0, 0.0, 0.0) for w in NEGATIVE}, **{w: (0.0, 0.0, 1.0) for w in POSITIVE}}
    # The neutral bias rides on [CLS], which every review has exactly once.
    rows["[CLS]"] = (0.0, NEUTRAL_LOGIT, 0.0)
    return write_bag_of_words(tmp_path_factory.mktemp("three-class"), tiny_base, rows, THREE_CLASSES)
