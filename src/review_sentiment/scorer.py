"""The ONNX Runtime scorer shared by the batch scorer, the app, the Ray engine and export's checks.

Imports neither torch nor transformers: an exported folder (model.onnx, tokenizer.json,
manifest.json) is all it needs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from .errors import UserError
from .manifest import MODEL_FILE, read_manifest, resolve_model_folder, verify_files
from .providers import Batching, SessionPlan, create_session, default_batching
from .scoring import predicted_classes, probabilities
from .text import ReviewEncoder, TextSpec, clean_text, pad_batch

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

# Texts tokenized and sorted by length together: enough that each batch pads little, few enough to hold.
SORT_WINDOW = 512

# Optimization levels that fuse attention; exports from before the fused op read the 0/1 mask lack
# manifest["attention_mask"] == "raw".
FUSED_ATTENTION = ("O2", "O3", "O4")


@dataclass(frozen=True)
class Prediction:
    """One review's result: its label, the confidence in that label and every class's probability.

    `score` is the second label's probability (of positive) for a two-label model, and None for more labels,
    where no one class is "the" score (read `probabilities` instead).
    """

    label: str
    score: float | None
    confidence: float
    probabilities: dict[str, float] = field(default_factory=dict, hash=False)


def iter_windows(items: Iterable, size: int) -> Iterator[list]:
    window: list = []
    for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def split_batches(lengths: Sequence[int], rows: int | None, tokens: int | None) -> list[slice]:
    """Consecutive batches over reviews sorted longest first (`lengths`): each at most `rows` reviews and, padded
    to its first (longest), at most `tokens` tokens, but never empty."""
    batches, start = [], 0
    while start < len(lengths):
        end = start + 1
        while (
            end < len(lengths)
            and (rows is None or end - start < rows)
            and (tokens is None or (end - start + 1) * lengths[start] <= tokens)
        ):
            end += 1
        batches.append(slice(start, end))
        start = end
    return batches


def _check_logits_width(session: ort.InferenceSession, labels: tuple[str, ...], model_path: Path) -> None:
    """A graph must answer one logit per label of its manifest: with one more or fewer, every label would be
    named after the wrong class (or scoring would fail half-way through a file)."""
    outputs = {o.name: o.shape for o in session.get_outputs()}
    if "logits" not in outputs:
        raise UserError(f"{model_path} has no 'logits' output (it has {sorted(outputs)}): not a classifier export")
    width = outputs["logits"][-1] if outputs["logits"] else None  # a name when the graph leaves it open
    if isinstance(width, int) and width != len(labels):
        raise UserError(
            f"{model_path} answers {width} logits, but its manifest names {len(labels)} labels ({list(labels)}): "
            "export the model again"
        )


class Scorer:
    """An exported model on an ONNX Runtime session: texts in, predictions out, in input order."""

    def __init__(
        self,
        folder: Path,
        session: ort.InferenceSession,
        encoder: ReviewEncoder,
        manifest: dict,
        batching: Batching | None = None,
        open_single_thread: Callable[[], ort.InferenceSession] | None = None,
    ) -> None:
        self.folder = folder
        self.session = session
        self.encoder = encoder
        self.manifest = manifest
        self.labels = encoder.spec.labels
        # Fitted at export on validation logits; dividing the logits by it changes confidences, never labels.
        self.temperature = float(manifest.get("temperature", 1.0))
        self.input_names = [i.name for i in session.get_inputs()]
        self.batching = batching or default_batching(self.provider)
        if open_single_thread is None:  # no single-thread session to run them on: one call at a time
            self.batching = replace(self.batching, concurrent=1)
        # Concurrent calls run on a second session of one thread each, made when first needed: a lone call (the
        # app's one review) keeps every thread of `session`.
        self.concurrent_session: ort.InferenceSession | None = None
        self._open_single_thread = open_single_thread
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._opening = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        provider: str = "auto",
        threads: int | None = None,
        verify_checksum: bool = True,
        calibrated: bool = True,
        batch_size: int | None = None,
        max_batch: int | None = None,
    ) -> Scorer:
        """The scorer of an exported folder; `calibrated=False` ignores its temperature (raw logits, for parity
        checks). `threads`: CPU threads (default: all this process may use). `batch_size`: reviews per call
        (default: `default_batching` for the provider that runs). `max_batch` is the largest batch it will be
        given (TensorRT sizes its engine by it; default 64, or `batch_size`)."""
        if threads is not None and threads < 1:
            raise UserError(f"--threads must be 1 or more, not {threads}")
        folder = resolve_model_folder(model)
        manifest = read_manifest(folder)
        model_path = folder / manifest.get("model_file", MODEL_FILE)
        if not model_path.is_file():
            raise UserError(f"{model_path} is missing from the exported folder")
        if verify_checksum:
            verify_files(folder, manifest)
        try:
            spec = TextSpec.from_dict(manifest["text_spec"])
        except ValueError as error:
            raise UserError(f"{folder / 'manifest.json'}: {error}") from error
        try:
            encoder = ReviewEncoder.from_file(folder / "tokenizer.json", spec)
        except Exception as error:  # the tokenizers library raises a bare Exception on a bad file
            raise UserError(f"could not read {folder / 'tokenizer.json'}: {str(error).splitlines()[0]}") from error
        max_batch = max_batch or max(64, batch_size or 0)
        plan = SessionPlan.from_manifest(manifest, max_batch)
        session = create_session(model_path, provider, threads, plan)
        _check_logits_width(session, spec.labels, model_path)
        batching = default_batching(session.get_providers()[0], batch_size, threads)
        scorer = cls(folder, session, encoder, manifest, batching, lambda: create_session(model_path, "cpu", 1, plan))
        if not calibrated:
            scorer.temperature = 1.0
        log.info(
            "model %s (%s) on %s, %s",
            folder,
            manifest.get("quantization", "none"),
            scorer.provider,
            scorer.batching.describe(),
        )
        if manifest.get("optimization") in FUSED_ATTENTION and manifest.get("attention_mask") != "raw":
            log.warning(
                "%s was exported with attention fused on each row's length, not its mask: a word masked in the middle "
                "(the app's explanations) is not masked there. Export it again to explain with it.",
                folder,
            )
        return scorer

    @property
    def provider(self) -> str:
        """The execution provider that really runs the graph (first of the session's list)."""
        return self.session.get_providers()[0]

    def run_ids(self, ids: Sequence[Sequence[int]], session: ort.InferenceSession | None = None) -> np.ndarray:
        """Calibrated logits (divided by the manifest's temperature) for one batch of token ids, padded to its longest member."""
        padded, mask = pad_batch(ids, self.encoder.pad_id)
        return self._run(np.asarray(padded, dtype=np.int64), np.asarray(mask, dtype=np.int64), session)

    def run_masked(self, ids: Sequence[int], masks: np.ndarray) -> np.ndarray:
        """Calibrated logits for one token sequence under several attention masks (a row each): a token
        masked out is not attended to, and every other token keeps its position (the explainer's occlusion)."""
        masks = np.asarray(masks, dtype=np.int64)
        return self._run(np.tile(np.asarray(ids, dtype=np.int64), (len(masks), 1)), masks)

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray, session=None) -> np.ndarray:
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        # Plain run(): inputs and logits are small, so binding them on the device would save no copy.
        feeds = {name: arrays[name] for name in self.input_names}
        logits = (session or self.session).run(["logits"], feeds)[0]
        logits = logits.astype(np.float32)  # fp16 graphs answer in float16: divide in float32
        return logits / np.float32(self.temperature) if self.temperature != 1.0 else logits

    def iter_logits(
        self, texts: Iterable[str], batch_size: int | None = None, window: int | None = None, *, cleaned: bool = False
    ) -> Iterator[np.ndarray]:
        """Logits row by row in input order; at most `window` texts are held at once.

        Texts are cleaned here unless the caller already did (`cleaned=True`: training data, the
        explainer, the batch scorer), so each text is cleaned once. Inside each window the texts are
        sorted by token length, so each batch pads little. `batch_size` fixes the reviews a call (default:
        the scorer's `batching`).
        """
        batching = self.batching if batch_size is None else replace(self.batching, rows=batch_size, tokens=None)
        for chunk in iter_windows(texts, window or max(SORT_WINDOW, 16 * (batching.rows or 0))):
            ids = self.encoder.encode(chunk if cleaned else [clean_text(t) for t in chunk])
            order = np.argsort([-len(s) for s in ids], kind="stable")
            batches = [order[b] for b in split_batches([len(ids[i]) for i in order], batching.rows, batching.tokens)]
            out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
            for index, logits in zip(
                batches, self._run_batches([[ids[i] for i in b] for b in batches], batching), strict=True
            ):
                out[index] = logits
            yield from out

    def _run_batches(self, batches: list[list[Sequence[int]]], batching: Batching) -> Iterator[np.ndarray]:
        """Each batch's logits, in order: one call at a time on `session`, or `batching.concurrent` at once."""
        if batching.concurrent == 1 or len(batches) == 1 or self._open_single_thread is None:
            return map(self.run_ids, batches)
        with self._opening:  # the app may score two files at once: open each thing once
            if self.concurrent_session is None:
                self.concurrent_session = self._open_single_thread()
            if batching.concurrent not in self._pools:
                self._pools[batching.concurrent] = ThreadPoolExecutor(batching.concurrent, thread_name_prefix="scorer")
            session, pool = self.concurrent_session, self._pools[batching.concurrent]
        return pool.map(lambda batch: self.run_ids(batch, session), batches)

    def logits(self, texts: Sequence[str], batch_size: int | None = None, *, cleaned: bool = False) -> np.ndarray:
        rows = list(self.iter_logits(texts, batch_size, cleaned=cleaned))
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def iter_predict(
        self, texts: Iterable[str], batch_size: int | None = None, window: int | None = None
    ) -> Iterator[Prediction]:
        for row in self.iter_logits(texts, batch_size, window):
            yield self.to_prediction(row)

    def to_prediction(self, logits_row: np.ndarray) -> Prediction:
        probs = probabilities(logits_row[None, :])[0]
        best = int(predicted_classes(probs))
        score = float(probs[1]) if len(self.labels) == 2 else None
        by_label = {label: float(p) for label, p in zip(self.labels, probs, strict=True)}
        return Prediction(self.labels[best], score, float(probs[best]), by_label)

    @overload
    def predict(self, texts: str, batch_size: int | None = None) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str], batch_size: int | None = None) -> list[Prediction]: ...

    def predict(self, texts, batch_size=None):
        """Predictions for a text or a list of texts, answered in kind."""
        if isinstance(texts, str):
            return next(self.iter_predict([texts], batch_size))
        return list(self.iter_predict(texts, batch_size))
