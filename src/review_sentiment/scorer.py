"""The ONNX Runtime scorer shared by the batch scorer, the app, the Ray engine and export's checks.

Imports neither torch nor transformers: an exported folder (model.onnx, tokenizer.json,
manifest.json) is all it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, overload

import numpy as np

from .errors import UserError
from .manifest import MODEL_FILE, read_manifest, resolve_model_folder, verify_files
from .providers import SessionPlan, create_session
from .scoring import predicted_classes, probabilities
from .text import ReviewEncoder, TextSpec, clean_text, pad_batch

if TYPE_CHECKING:
    import onnxruntime as ort

log = logging.getLogger(__name__)

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

    def __init__(self, folder: Path, session: ort.InferenceSession, encoder: ReviewEncoder, manifest: dict) -> None:
        self.folder = folder
        self.session = session
        self.encoder = encoder
        self.manifest = manifest
        self.labels = encoder.spec.labels
        # Fitted at export on validation logits; dividing the logits by it changes confidences, never labels.
        self.temperature = float(manifest.get("temperature", 1.0))
        self.input_names = [i.name for i in session.get_inputs()]

    @classmethod
    def load(
        cls,
        model: str | Path | None = None,
        provider: str = "auto",
        threads: int | None = None,
        verify_checksum: bool = True,
        calibrated: bool = True,
        max_batch: int = 64,
    ) -> Scorer:
        """The scorer of an exported folder; `calibrated=False` ignores its temperature (raw logits, for parity
        checks). `max_batch` is the largest batch it will be given (TensorRT sizes its engine by it)."""
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
        session = create_session(model_path, provider, threads, SessionPlan.from_manifest(manifest, max_batch))
        _check_logits_width(session, spec.labels, model_path)
        scorer = cls(folder, session, encoder, manifest)
        if not calibrated:
            scorer.temperature = 1.0
        log.info("model %s (%s) on %s", folder, manifest.get("quantization", "none"), scorer.provider)
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

    def run_ids(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        """Calibrated logits (divided by the manifest's temperature) for one batch of token ids, padded to its longest member."""
        padded, mask = pad_batch(ids, self.encoder.pad_id)
        return self._run(np.asarray(padded, dtype=np.int64), np.asarray(mask, dtype=np.int64))

    def run_masked(self, ids: Sequence[int], masks: np.ndarray) -> np.ndarray:
        """Calibrated logits for one token sequence under several attention masks (a row each): a token
        masked out is not attended to, and every other token keeps its position (the explainer's occlusion)."""
        masks = np.asarray(masks, dtype=np.int64)
        return self._run(np.tile(np.asarray(ids, dtype=np.int64), (len(masks), 1)), masks)

    def _run(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        arrays = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": np.zeros_like(input_ids)}
        # Plain run(): inputs and logits are small, so binding them on the device would save no copy.
        logits = self.session.run(["logits"], {name: arrays[name] for name in self.input_names})[0]
        logits = logits.astype(np.float32)  # fp16 graphs answer in float16: divide in float32
        return logits / np.float32(self.temperature) if self.temperature != 1.0 else logits

    def iter_logits(
        self, texts: Iterable[str], batch_size: int = 32, window: int | None = None, *, cleaned: bool = False
    ) -> Iterator[np.ndarray]:
        """Logits row by row in input order; at most `window` texts are held at once.

        Texts are cleaned here unless the caller already did (`cleaned=True`: training data, the
        explainer, the batch scorer), so each text is cleaned once. Inside each window the texts are
        sorted by token length, so each batch pads little.
        """
        for chunk in iter_windows(texts, window or batch_size * 16):
            ids = self.encoder.encode(chunk if cleaned else [clean_text(t) for t in chunk])
            order = np.argsort([-len(s) for s in ids], kind="stable")
            out = np.empty((len(ids), len(self.labels)), dtype=np.float32)
            for start in range(0, len(ids), batch_size):
                index = order[start : start + batch_size]
                out[index] = self.run_ids([ids[i] for i in index])
            yield from out

    def logits(self, texts: Sequence[str], batch_size: int = 32, *, cleaned: bool = False) -> np.ndarray:
        rows = list(self.iter_logits(texts, batch_size, cleaned=cleaned))
        return np.stack(rows) if rows else np.zeros((0, len(self.labels)), dtype=np.float32)

    def iter_predict(
        self, texts: Iterable[str], batch_size: int = 32, window: int | None = None
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
    def predict(self, texts: str, batch_size: int = 32) -> Prediction: ...
    @overload
    def predict(self, texts: Sequence[str], batch_size: int = 32) -> list[Prediction]: ...

    def predict(self, texts, batch_size=32):
        """Predictions for a text or a list of texts, answered in kind."""
        if isinstance(texts, str):
            return next(self.iter_predict([texts], batch_size))
        return list(self.iter_predict(texts, batch_size))
