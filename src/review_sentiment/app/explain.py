"""Which words pushed a prediction which way: occlusion inside the window the model reads, on ONNX Runtime.

Each unit (a word; for long reviews a sentence; for very long ones a group of sentences) is hidden in
turn and the review re-scored; the drop in the log-odds of positive is that unit's weight (log-odds,
not probability, because a confident prediction's probability barely moves whatever is hidden). With
more than two labels no class is "positive": the weight is the drop in the predicted class's log-odds
(its logit minus the log-sum-exp of the others), so a unit pushes towards the prediction or away from it.

A unit is hidden by masking its tokens (attention mask 0) in exactly the token sequence the model
reads, every other token staying at its position. Deleting the unit's text instead would move the
head+tail window of a long review, let unread text in, and credit that text's effect to the unit.
Text between the head and the tail is never read: it gets no weight and is shown as not read.
A review costs `units + 1` rows of the tokens the model reads, run in a few batched session calls; the
units are capped twice: never more than `max_units`, and never more rows than fit `row_tokens` tokens in
all (but at least MIN_UNITS units), so that a long review is explained by fewer, larger units in about the
time of a short one rather than by 48 full-length rows.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass

import numpy as np

from ..scorer import Prediction, Scorer
from ..scoring import predicted_classes
from ..text import clean_text
from .colors import NOT_READ, direction_words, strength_colors  # noqa: F401 (strength_colors: the legend's API)

# A sentence runs to the first end mark followed by whitespace (so "3.5" does not end one), or to the end.
_SENTENCE = re.compile(r"\S(?:.*?[.!?…](?=\s)|.*$)", re.S)
_WORD = re.compile(r"\S+")

Span = tuple[int, int]  # [start, end) characters of the cleaned review
ROW_TOKENS = 3072  # tokens an explanation runs in all: 8 rows of a review read to 384 tokens
# Tokens per session call: on this project's 2-core CPU, long rows ran faster a few to a call than all in one
# (the int8 kernels' working set stays in cache; bench_app's "model alone" column shows the effect), while
# short rows still go many to a call.
CALL_TOKENS = 1024
MIN_UNITS = 6


@dataclass(frozen=True)
class Explanation:
    prediction: Prediction
    text: str  # the cleaned review the spans index
    spans: list[Span]  # the units, in text order
    # Log-odds lost when the unit is hidden (of the second label; with more labels, of the predicted class):
    # > 0 pushed towards it.
    weights: list[float]
    granularity: str
    tokens: int
    truncated: bool  # more tokens than the model reads
    unread: Span | None  # the characters the model never reads (between head and tail), shown greyed
    pieces: list[tuple[Span, int]]  # what is shown in each unit's colour: (span, unit index), unread text left out

    @property
    def units(self) -> list[str]:
        return [self.text[a:b] for a, b in self.spans]

    def highlighted(self, labels: tuple[str, ...] = ("negative", "positive")) -> list[tuple[str, str | None]]:
        """The whole review as (text, category) pairs for gr.HighlightedText; see `strength_colors`.

        Relative to the largest weight: above half is "strongly", above a tenth plain, else no label.
        Text between units keeps no label; the unread middle is one "not read" piece.
        """
        scale = max((abs(w) for w in self.weights), default=0.0) or 1.0
        # Two labels: towards the second or the first; more: towards the predicted class or away from it.
        up, down = (labels[1], labels[0]) if len(labels) == 2 else direction_words(self.prediction.label)
        pieces: list[tuple[Span, str | None]] = []
        for span, unit in self.pieces:
            share = abs(self.weights[unit]) / scale
            direction = up if self.weights[unit] > 0 else down
            pieces.append((span, f"strongly {direction}" if share > 0.5 else direction if share > 0.1 else None))
        if self.unread:
            pieces.append((self.unread, NOT_READ))
        pairs: list[tuple[str, str | None]] = []

        def add_gap(gap: str) -> None:
            # Spaces between units join the piece before them: Gradio lays each piece out as its own box.
            if pairs and not gap.strip():
                pairs[-1] = (pairs[-1][0] + gap, pairs[-1][1])
            elif gap:
                pairs.append((gap, None))

        position = 0
        for (start, end), category in sorted(pieces):
            add_gap(self.text[position:start])
            pairs.append((self.text[start:end], category))
            position = end
        add_gap(self.text[position:])
        return pairs

    def top(self, count: int = 5) -> list[tuple[str, float]]:
        order = np.argsort(np.abs(self.weights))[::-1][:count]
        return [(self.units[i], self.weights[i]) for i in order]


def split_units(text: str, max_units: int, read: list[Span] | None = None) -> tuple[list[Span], str]:
    """Words if there are few enough, else sentences, else consecutive sentences grouped to fit; only
    units that overlap the `read` character ranges (all the text when None)."""
    read = read if read is not None else [(0, len(text))]

    def overlaps(span: Span) -> bool:
        return any(span[0] < end and start < span[1] for start, end in read)

    words = [m.span() for m in _WORD.finditer(text) if overlaps(m.span())]
    if len(words) <= max_units:
        return words, "word"
    sentences = [_strip(text, m.span()) for m in _SENTENCE.finditer(text)]
    # Runs of consecutive read sentences (head, tail): a group never spans the unread middle.
    runs: list[list[Span]] = []
    for index, sentence in enumerate(sentences):
        if overlaps(sentence):
            if not runs or not overlaps(sentences[index - 1]):
                runs.append([])
            runs[-1].append(sentence)
    count = sum(len(run) for run in runs)
    if count <= max_units:
        return [s for run in runs for s in run], "sentence"
    size = math.ceil(count / max_units)
    while sum(math.ceil(len(run) / size) for run in runs) > max_units:
        size += 1
    groups = [(run[i][0], run[min(i + size, len(run)) - 1][1]) for run in runs for i in range(0, len(run), size)]
    return groups, "sentence group"


def _strip(text: str, span: Span) -> Span:
    """`span` without the whitespace at either end."""
    start, end = span
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def unit_budget(tokens: int, max_units: int, row_tokens: int) -> int:
    """How many units a review of `tokens` read tokens (special ones included) is split into, at most."""
    return max(min(MIN_UNITS, max_units), min(max_units, row_tokens // tokens - 1))


def explain(
    scorer: Scorer,
    text: str,
    max_units: int = 48,
    batch_size: int | None = None,
    *,
    cleaned: bool = False,
    row_tokens: int = ROW_TOKENS,
) -> Explanation:
    """Predict `text` and weigh each of its read units by occlusion (`cleaned=True`: the caller cleaned it);
    `batch_size` rows per session call (default: as many as fit CALL_TOKENS)."""
    cleaned_text = text if cleaned else clean_text(text)
    encoder = scorer.encoder
    encoding = encoder.tokenizer.encode(cleaned_text, add_special_tokens=False)
    offsets = encoding.offsets
    head, tail_start = encoder.window(len(encoding.ids))
    read_tokens = [*range(head), *range(tail_start, len(offsets))]
    read_chars = [offsets[i] for i in read_tokens]
    ids = encoder.wrap([encoding.ids[i] for i in read_tokens])
    spans, granularity = split_units(cleaned_text, unit_budget(len(ids), max_units, row_tokens), read_chars)
    masks = np.ones((len(spans) + 1, len(ids)), dtype=np.int64)
    starts = [a for a, _ in spans]
    for position, (char_start, _) in enumerate(read_chars):
        unit = bisect.bisect_right(starts, char_start) - 1
        if unit >= 0 and char_start < spans[unit][1]:
            masks[unit + 1, encoder.prefix_length + position] = 0
    batch_size = batch_size or max(1, CALL_TOKENS // len(ids))
    logits = np.concatenate(
        [scorer.run_masked(ids, masks[i : i + batch_size]) for i in range(0, len(masks), batch_size)]
    )
    log_odds = _log_odds(logits, len(scorer.labels))
    unread = _unread(cleaned_text, offsets, head, tail_start)
    parts = [_read_parts(cleaned_text, span, unread) for span in spans]
    return Explanation(
        prediction=scorer.to_prediction(logits[0]),
        text=cleaned_text,
        spans=[unit_parts[0] for unit_parts in parts],
        pieces=[(part, unit) for unit, unit_parts in enumerate(parts) for part in unit_parts],
        weights=[float(log_odds[0] - value) for value in log_odds[1:]],
        granularity=granularity,
        tokens=len(offsets),
        truncated=len(offsets) > encoder.budget,
        unread=unread,
    )


def _log_odds(logits: np.ndarray, classes: int) -> np.ndarray:
    """Per row, the log-odds the weights are drops of: of the second label for two labels (so a weight says
    which label a unit pushed towards, whatever was predicted); with more, of the class predicted for the
    whole review (row 0), against all the others together."""
    if classes == 2:
        return logits[:, 1] - logits[:, 0]
    logits = logits.astype(np.float64)
    predicted = int(predicted_classes(logits[:1])[0])
    others = np.delete(logits, predicted, axis=1)
    peak = others.max(axis=1)
    return logits[:, predicted] - (peak + np.log(np.exp(others - peak[:, None]).sum(axis=1)))


def _unread(text: str, offsets: list[Span], head: int, tail_start: int) -> Span | None:
    """The characters the model never reads: after the head's last token and before the tail's first."""
    if tail_start == head:  # nothing was cut
        return None
    after_head = offsets[head - 1][1] if head else 0
    before_tail = offsets[tail_start][0] if tail_start < len(offsets) else len(text)
    start, end = _strip(text, (after_head, before_tail))
    return (start, end) if start < end else None


def _read_parts(text: str, span: Span, unread: Span | None) -> list[Span]:
    """The parts of a unit that the model read: a unit cut by the window's edge loses the part beyond it
    (shown with the unread text), and one that spans the whole gap keeps a part on each side."""
    if unread is None or span[1] <= unread[0] or span[0] >= unread[1]:
        return [span]
    parts = [_strip(text, (span[0], unread[0])), _strip(text, (unread[1], span[1]))]
    return [(a, b) for a, b in parts if a < b] or [span]
