"""Label order through export: the training manifest's labels, the merged model's id2label, the exported
manifest and the scorer must name the logits in one order, for any number of labels."""

import json
import shutil

import numpy as np
import pytest

from review_sentiment.errors import UserError
from review_sentiment.export.onnx import model_labels
from review_sentiment.scorer import Scorer
from review_sentiment.text import LABELS, clean_text

from ..conftest import THREE_CLASSES, toy_reviews_3class

# Neither alphabetical nor the order of any rule that discovers labels: only carrying it keeps it.
ORDER = ["positive", "negative", "neutral"]


def _merged(folder, labels, heads=None):
    """A merged-model folder holding only what model_labels reads: config.json and the training manifest."""
    folder.mkdir()
    id2label = {str(i): name for i, name in enumerate(heads if heads is not None else labels)}
    (folder / "config.json").write_text(json.dumps({"id2label": id2label}))
    training = {"text_spec": {"max_length": 48, "truncation": "head+tail", **({"labels": labels} if labels else {})}}
    return folder, training


def test_labels_come_from_the_run_and_must_match_the_model(tmp_path):
    assert model_labels(*_merged(tmp_path / "a", ORDER)) == ORDER
    assert model_labels(*_merged(tmp_path / "b", ORDER, ["LABEL_0", "LABEL_1", "LABEL_2"])) == ORDER
    assert model_labels(*_merged(tmp_path / "c", None, list(LABELS))) == list(LABELS)  # an older, binary run
    with pytest.raises(UserError, match=r"names the outputs \['neutral', 'negative', 'positive'\] but"):
        model_labels(*_merged(tmp_path / "d", ORDER, ORDER[::-1]))
    with pytest.raises(UserError, match=r"has 2 outputs .* names 3 labels"):
        model_labels(*_merged(tmp_path / "e", ORDER, ["negative", "positive"]))


@pytest.fixture(scope="module")
def exported_by_hand(tiny_base, tmp_path_factory):
    """A random three-class BERT with its labels in ORDER, as `sentiment train` leaves a merged model, and
    its fp32 export (no validation data: the probes are scored)."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    from review_sentiment.export.config import ExportConfig
    from review_sentiment.export.pipeline import export

    root = tmp_path_factory.mktemp("three-by-hand")
    merged = root / "merged"
    config = BertConfig.from_pretrained(tiny_base, num_labels=3, id2label=dict(enumerate(ORDER)))
    config.label2id = {name: i for i, name in enumerate(ORDER)}
    torch.manual_seed(3)
    model = BertForSequenceClassification(config).eval()
    merged.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        shutil.copy2(tiny_base / name, merged / name)
    # A random head answers one class for every review: widen its logits and centre them on toy reviews,
    # so that reviews differ in their predicted class (what the order is checked on).
    tokenizer = BertTokenizerFast.from_pretrained(merged)
    batch = tokenizer(toy_reviews_3class(60, seed=1)["review"].tolist(), padding=True, return_tensors="pt")
    with torch.no_grad():
        model.classifier.weight.mul_(50)
        model.classifier.bias.sub_(model(**batch).logits.mean(dim=0))
    model.save_pretrained(merged)
    training = {
        "text_spec": {"max_length": 48, "truncation": "head+tail", "labels": ORDER},
        "base_model": str(tiny_base),
        "data": {
            "split": "20% of reviews.csv, stratified",
            "train": {"source": "reviews.csv", "rows": 96, "balance": "", "dropped_empty": 0, "dropped_duplicates": 0},
            "validation": {"source": "reviews.csv", "rows": 24, "balance": ""},
        },
        "metrics": {},
        "hyperparameters": {},
    }
    (merged / "training_manifest.json").write_text(json.dumps(training))
    out = export(ExportConfig(model=merged, output=root / "onnx", validation_samples=0))
    return merged, out


def test_the_label_order_reaches_the_scorer(exported_by_hand):
    import torch
    from transformers import AutoModelForSequenceClassification

    merged, out = exported_by_hand
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["labels"] == manifest["text_spec"]["labels"] == ORDER
    config = json.loads((out / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(3)] == ORDER
    assert manifest["export_check"]["fp32_vs_pytorch_max_abs_logit_diff"] <= 1e-4
    scorer = Scorer.load(out)
    assert scorer.labels == tuple(ORDER)
    # PyTorch's own name for each review's class is the scorer's.
    model = AutoModelForSequenceClassification.from_pretrained(merged).eval()
    texts = toy_reviews_3class(12, seed=2)["review"].tolist()
    named = []
    for ids in scorer.encoder.encode([clean_text(t) for t in texts]):
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
        named.append(model.config.id2label[int(logits.logits[0].argmax())])
    assert [p.label for p in scorer.predict(texts)] == named and len(set(named)) > 1
    assert "`positive`, `negative`, `neutral`" in (out / "README.md").read_text()


def test_the_export_check_measures_against_an_independent_count(exported_by_hand, tmp_path):
    from review_sentiment.export.verify import measure

    _, out = exported_by_hand
    texts = toy_reviews_3class(45, seed=6)["review"].tolist()
    logits = Scorer.load(out, calibrated=False).logits(texts)
    predicted = logits.argmax(axis=1)
    gold = np.random.default_rng(0).integers(0, 3, len(texts))
    row = measure(out, texts, gold, logits)
    assert row["accuracy"] == pytest.approx(np.mean(predicted == gold), abs=1e-12) and row["agreement"] == 1.0
    assert measure(out, texts, predicted, None)["accuracy"] == 1.0 and "mean_absolute_error" not in row
    stars = tmp_path / "stars"  # the same graph with numbered labels: the error in stars is measured too
    shutil.copytree(out, stars)
    manifest = json.loads((stars / "manifest.json").read_text())
    manifest["labels"] = manifest["text_spec"]["labels"] = ["1", "3", "5"]
    (stars / "manifest.json").write_text(json.dumps(manifest))
    row = measure(stars, texts, gold, None)
    values = np.array([1, 3, 5])
    assert row["mean_absolute_error"] == pytest.approx(np.abs(values[predicted] - values[gold]).mean())
    assert row["within_one_class"] == pytest.approx(np.mean(np.abs(predicted - gold) <= 1))


def test_the_scorer_refuses_labels_that_do_not_fit(bag_of_words_model, tmp_path):
    folder = tmp_path / "three-names"
    shutil.copytree(bag_of_words_model, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    (folder / "manifest.json").write_text(json.dumps({**manifest, "labels": ["negative", "neutral", "positive"]}))
    with pytest.raises(UserError, match=r"text_spec labels \['negative', 'positive'\] differ from labels"):
        Scorer.load(folder)
    spec = {**manifest["text_spec"], "labels": ["negative", "neutral", "positive"]}
    (folder / "manifest.json").write_text(json.dumps({**manifest, "labels": spec["labels"], "text_spec": spec}))
    with pytest.raises(UserError, match=r"answers 2 logits, but its manifest names 3 labels"):
        Scorer.load(folder)
    (folder / "manifest.json").write_text(json.dumps({**manifest, "labels": ["positive"]}))
    with pytest.raises(UserError, match=r"labels must be two or more non-empty names, not \['positive'\]"):
        Scorer.load(folder)


def test_a_trained_three_class_run_keeps_its_order_to_the_scorer(trained_run_3class, exported_3class):
    """train → merged config → ONNX manifest → Scorer.labels, and the export's accuracy recounted here."""
    from review_sentiment.export.verify import validation_sample

    training = json.loads((trained_run_3class / "merged" / "training_manifest.json").read_text())
    config = json.loads((trained_run_3class / "merged" / "config.json").read_text())
    assert training["text_spec"]["labels"] == list(THREE_CLASSES)
    assert [config["id2label"][str(i)] for i in range(3)] == list(THREE_CLASSES)
    manifest = json.loads((exported_3class / "manifest.json").read_text())
    assert manifest["labels"] == manifest["text_spec"]["labels"] == list(THREE_CLASSES)
    assert Scorer.load(exported_3class).labels == THREE_CLASSES
    assert (
        "Its 3 logits are, in order: `negative`, `neutral`, `positive`." in (exported_3class / "README.md").read_text()
    )
    texts, gold = validation_sample(training, 60)
    logits = Scorer.load(exported_3class, calibrated=False).logits(texts, cleaned=True)
    _, int8_row = manifest["export_check"]["variants"]
    assert int8_row["reviews"] == len(texts) and int8_row["agreement"] >= 0.9
    assert int8_row["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == gold), abs=1e-12)
    assert manifest["validation_metrics"]["accuracy"] == int8_row["accuracy"]
