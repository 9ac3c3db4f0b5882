"""Loading labelled reviews from the Hub or local files, cleaning them, and splitting them; and the check,
before any Hub download, that the Hub can be reached (shared with the base model's loading)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..card import HUB_DATASET_OF_ALIAS
from ..columns import TEXT_COLUMNS, detect_column, is_missing
from ..errors import UserError
from ..labels import column_classes, parse_labels
from ..text import LABELS, clean_text

log = logging.getLogger(__name__)

# One request, no retry: the libraries' own five retries with backoff take about 30 s per file to fail.
HUB_PROBE_SECONDS = 2.0
DATA_ADVICE = "pass a local CSV/TSV/Parquet/JSONL file or aclImdb folder instead (--dataset reviews.csv)"
_OFFLINE_SWITCHES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
# Star ratings come last: a file that also has a label column is labelled by it.
LABEL_COLUMNS = ("label", "labels", "sentiment", "polarity", "class", "target", "rating", "stars")
READERS = {
    ".csv": lambda p: pd.read_csv(p),
    ".tsv": lambda p: pd.read_csv(p, sep="\t"),
    ".parquet": pd.read_parquet,
    ".jsonl": lambda p: pd.read_json(p, lines=True),
    ".json": lambda p: pd.read_json(p, lines=True),
}


@dataclass
class Reviews:
    """Cleaned texts with class indices into `names` (the label names, in order), and what loading them found."""

    texts: list[str]
    labels: np.ndarray
    source: str
    dropped_empty: int = 0
    dropped_duplicates: int = 0
    extra: dict = field(default_factory=dict)
    names: tuple[str, ...] = LABELS

    def __len__(self) -> int:
        return len(self.texts)

    def balance(self) -> dict[str, int]:
        """Reviews per label name, every name listed (0 for a class with none), in label order."""
        counts = np.bincount(self.labels, minlength=len(self.names))
        return {name: int(counts[i]) for i, name in enumerate(self.names)}

    def subset(self, index: np.ndarray) -> Reviews:
        """Some of the rows; the dropped counts still describe the load they came from."""
        return Reviews(
            [self.texts[i] for i in index],
            self.labels[index],
            self.source,
            self.dropped_empty,
            self.dropped_duplicates,
            names=self.names,
        )

    def describe(self) -> dict:
        return {
            "source": self.source,
            "rows": len(self),
            "labels": list(self.names),
            "balance": self.balance(),
            "dropped_empty": self.dropped_empty,
            "dropped_duplicates": self.dropped_duplicates,
        }


def declared_labels(params: dict) -> tuple[str, ...] | None:
    """A run's fixed label names: `--labels a,b,c` as typed, or the list a training manifest records; None
    when the labels are to be found in the data (an option left out, or a manifest older than the option)."""
    value = params.get("labels")
    if not value:
        return None
    return parse_labels(value) if isinstance(value, str) else tuple(str(name) for name in value)


def _read_acl_imdb(folder: Path) -> pd.DataFrame:
    if not (folder / "pos").is_dir() and (folder / "train" / "pos").is_dir():
        folder = folder / "train"
    rows = []
    for label, name in ((0, "neg"), (1, "pos")):
        for path in sorted((folder / name).glob("*.txt")):
            rows.append((path.read_text(encoding="utf-8"), label))
    if not rows:
        raise UserError(f"{folder} has no pos/*.txt or neg/*.txt reviews (the aclImdb layout)")
    return pd.DataFrame(rows, columns=["text", "label"])


def read_table(path: Path) -> pd.DataFrame:
    """Read CSV, TSV, Parquet, JSONL or an aclImdb folder into a frame."""
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        if (path / "pos").is_dir() or (path / "train" / "pos").is_dir():
            return _read_acl_imdb(path)
        raise UserError(f"{path} is a folder without the aclImdb layout (pos/ and neg/ of .txt files)")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise UserError(f"unsupported file type {path.suffix!r}; use one of {', '.join(READERS)}")
    try:
        return reader(path)
    except (ValueError, OSError, pd.errors.ParserError) as error:
        raise UserError(f"could not read {path}: {str(error).splitlines()[0]}") from error


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or the older HF_DATASETS_OFFLINE, TRANSFORMERS_OFFLINE) asks for no network call."""
    from huggingface_hub import constants

    # The environment is read too: huggingface_hub reads it once, when it is first imported.
    switched = any(os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"} for name in _OFFLINE_SWITCHES)
    return bool(constants.HF_HUB_OFFLINE) or switched


def hub_endpoint() -> str:
    """The Hub's address as huggingface_hub uses it (HF_ENDPOINT, else https://huggingface.co)."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def hub_reachable(timeout: float) -> bool:
    """Whether the Hub endpoint answers one HEAD request within about `timeout` seconds (no retry).

    The request goes through huggingface_hub's own session, so its proxy and certificate settings apply.
    It runs in a daemon thread that is waited for at most `timeout` (plus a margin): a DNS lookup that
    hangs ignores the request's own timeout.
    """
    from huggingface_hub.utils import get_session

    answered = threading.Event()

    def probe() -> None:
        try:
            # A 5xx is the Hub down: the libraries would retry it like a missing network.
            if get_session().head(hub_endpoint(), timeout=timeout).status_code < 500:
                answered.set()
        except Exception:  # any failure to get an answer is what "unreachable" means here
            pass

    threading.Thread(target=probe, name="hub-probe", daemon=True).start()
    return answered.wait(timeout + 0.5)


def hub_access(what: str, cached: bool, advice: str) -> bool:
    """Whether `what` (a model or dataset named by Hub id) is to be loaded from the local cache only.

    Decided before any library call, so that a machine without network fails in a second with one line
    (a UserError naming `what`, the reason and `advice`) instead of after the libraries' retries: with
    HF_HUB_OFFLINE set, the cache alone; else one short probe of the Hub, and the cache when it fails.
    """
    if hub_offline():
        if cached:
            return True
        reason = "HF_HUB_OFFLINE is set"
    elif hub_reachable(timeout=HUB_PROBE_SECONDS):
        return False
    elif cached:
        log.info("the Hugging Face Hub (%s) is unreachable: using the cached copy of %s", hub_endpoint(), what)
        return True
    else:
        reason = f"{hub_endpoint()} is unreachable (no network?)"
    raise UserError(
        f"{what} could not be fetched from the Hugging Face Hub: {reason}, and it is not in the local cache; {advice}"
    )


def _dataset_cached(repo: str) -> bool:
    """Whether `datasets` prepared `repo` here before: the folder its offline mode reads."""
    from datasets import config
    from datasets.naming import camelcase_to_snakecase

    *owner, name = repo.split("/")
    folder = Path(config.HF_DATASETS_CACHE) / "___".join([*owner, camelcase_to_snakecase(name)])
    return any(path.is_dir() for path in folder.glob("*/*/*"))


@contextmanager
def _datasets_cache_only(enabled: bool) -> Iterator[None]:
    """With `enabled`: datasets' offline switch for the calls inside, so it reads its cache without trying
    the network, and its "using the latest cached version" warning left out (`hub_access` said so)."""
    if not enabled:
        yield
        return
    from datasets import config

    library_log = logging.getLogger("datasets")
    saved = config.HF_HUB_OFFLINE, library_log.level
    config.HF_HUB_OFFLINE = True
    library_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        config.HF_HUB_OFFLINE = saved[0]
        library_log.setLevel(saved[1])


def read_hub(name: str, split: str) -> pd.DataFrame:
    """A Hub dataset split as a frame (`imdb` means stanfordnlp/imdb); fails fast without network."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    repo = HUB_DATASET_OF_ALIAS.get(name, name)
    try:
        validate_repo_id(repo)
    except HFValidationError as error:
        raise UserError(f"dataset {name!r} is neither a local file or folder nor a Hub dataset id") from error
    cache_only = hub_access(f"dataset {name!r}", _dataset_cached(repo), DATA_ADVICE)
    from datasets import load_dataset

    try:
        with _datasets_cache_only(cache_only):
            return load_dataset(repo, split=split).to_pandas()
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise UserError(
            f"could not load dataset {repo!r} from the Hugging Face Hub ({type(error).__name__}: {first}); "
            + DATA_ADVICE
        ) from error


def load_reviews(
    source: str,
    split: str = "train",
    text_column: str | None = None,
    label_column: str | None = None,
    labels: Sequence[str] | None = None,
    origin: str = "given by --labels",
) -> Reviews:
    """Load, clean and de-duplicate labelled reviews from a local path or a Hub dataset id.

    `labels` fixes the label names and their order (`--labels`, or the training run's for an eval file:
    `origin` says which, for the error a value outside them gets); without it they are found in the data
    (see `labels.column_classes`).
    """
    path = Path(source)
    looks_local = path.exists() or path.suffix.lower() in READERS or source.startswith((".", "/"))
    frame = read_table(path) if looks_local else read_hub(source, split)
    if frame.empty:
        raise UserError(f"{source} holds no rows")
    text_col = detect_column(frame, TEXT_COLUMNS, "text", text_column)
    label_col = detect_column(frame, LABEL_COLUMNS, "label", label_column)
    unlabelled = frame[label_col].map(lambda v: is_missing(v) or not str(v).strip()).to_numpy()
    frame = frame.loc[~unlabelled, [text_col, label_col]]  # a blank label is a missing one, not a class ''
    texts = frame[text_col].map(lambda t: clean_text(t) if isinstance(t, str) else "")
    if label_col == text_col:
        raise UserError(
            f"{source}: {label_col!r} is the review text, not labels: name the label column with --label-column"
        )
    try:
        names, classes = column_classes(frame[label_col], label_col, labels, origin)
    except UserError as error:
        raise UserError(f"{source}: {error}") from error
    keep_nonempty = (texts != "").to_numpy()
    dropped_empty = int((~keep_nonempty).sum())
    texts, classes = texts[keep_nonempty], classes[keep_nonempty]
    keep_first = (~texts.duplicated()).to_numpy()
    dropped_duplicates = int((~keep_first).sum())
    reviews = Reviews(
        texts[keep_first].tolist(), classes[keep_first], source, dropped_empty, dropped_duplicates, names=names
    )
    if not len(reviews):
        raise UserError(f"{source} holds no non-empty reviews")
    log.info(
        "loaded %d reviews from %s (text=%r, label=%r); dropped %d without a label, %d empty and %d duplicate "
        "rows; balance %s",
        len(reviews),
        source,
        text_col,
        label_col,
        int(unlabelled.sum()),
        dropped_empty,
        dropped_duplicates,
        reviews.balance(),
    )
    return reviews


def stratified_split(reviews: Reviews, fraction: float, seed: int) -> tuple[Reviews, Reviews]:
    """A seeded split holding out `fraction` of each class; the same seed gives the same split."""
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    # One generator drawn class after class, in label order: two classes draw exactly as they always did.
    for label in range(len(reviews.names)):
        members = np.flatnonzero(reviews.labels == label)
        rng.shuffle(members)
        held.append(members[: max(1, round(len(members) * fraction))] if len(members) > 1 else members[:0])
    held_out = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(reviews)), held_out)
    if len(kept) == 0 or len(held_out) == 0:
        raise UserError(f"{len(reviews)} reviews are too few to hold out {fraction:.0%} for validation")
    return reviews.subset(kept), reviews.subset(held_out)


def training_split(
    reviews: Reviews, val_fraction: float, seed: int, max_samples: int | None = None
) -> tuple[Reviews, Reviews]:
    """An optional stratified subset, then a stratified hold-out: (train, validation)."""
    return stratified_split(stratified_subset(reviews, max_samples, seed), val_fraction, seed)


def run_split(params: dict) -> tuple[Reviews, Reviews]:
    """The (train, validation) reviews of a training run, from its options (a TrainConfig's dict, or the
    hyperparameters its manifest keeps).

    Training makes its split here and export and evaluate re-create it here, through this one
    function, so they can never measure on training rows. An eval file is read with the training data's
    label names: a class either side lacks is fine, a value the training labels do not name is an error.
    """
    text, label, seed = params.get("text_column"), params.get("label_column"), params["seed"]
    reviews = load_reviews(params["dataset"], "train", text, label, declared_labels(params))
    if params.get("eval_file"):
        held_out = load_reviews(params["eval_file"], "test", text, label, reviews.names, "of the training data")
        return stratified_subset(_without(reviews, held_out), params.get("max_samples"), seed), held_out
    return training_split(reviews, params["val_fraction"], seed, params.get("max_samples"))


def _without(reviews: Reviews, held_out: Reviews) -> Reviews:
    """`reviews` less any text the held-out reviews also hold: a review is never trained on and measured on."""
    seen = set(held_out.texts)
    keep = np.array([i for i, t in enumerate(reviews.texts) if t not in seen], dtype=np.int64)
    if len(keep) < len(reviews):
        log.warning("%d training reviews also appear in the eval file: left out of training", len(reviews) - len(keep))
    if len(keep) == 0:
        raise UserError("every training review also appears in the eval file: nothing is left to train on")
    return reviews.subset(keep)


def validation_split(params: dict) -> Reviews:
    """Only the validation reviews of a run (its eval file alone when it had one), as `run_split` makes them."""
    if params.get("eval_file"):
        # A manifest written before `labels` was recorded is of a two-class run.
        names = declared_labels(params) if "labels" in params else LABELS
        if names:
            text, label = params.get("text_column"), params.get("label_column")
            return load_reviews(params["eval_file"], "test", text, label, names, "of the trained model")
    return run_split(params)[1]


def stratified_subset(reviews: Reviews, max_samples: int | None, seed: int) -> Reviews:
    """At most `max_samples` rows, each class keeping its share (all rows when None)."""
    if max_samples and max_samples < len(reviews):
        reviews, _ = stratified_split(reviews, 1 - max_samples / len(reviews), seed)
    return reviews
