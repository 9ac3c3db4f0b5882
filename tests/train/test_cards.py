"""Model cards of a real run and its export: public names only, our own adapter card, and a snippet that works."""

import json
import re
from pathlib import Path

import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSequenceClassification

from review_sentiment.card import hub_model_id, local_paths, model_name, write_model_card
from review_sentiment.manifest import TRAINING_MANIFEST
from review_sentiment.train.config import TrainConfig

ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:tmp|home|work|root|Users|var|private)/")


def _cards(trained_run, exported) -> dict[str, str]:
    folders = {"run": trained_run, "merged": trained_run / "merged", "adapter": trained_run / "adapter"}
    folders |= {f"onnx {variant}": folder for variant, folder in exported.items()}
    return {name: (folder / "README.md").read_text() for name, folder in folders.items()}


def test_cards_of_a_run_on_a_local_file_carry_no_path(trained_run, exported, toy_csv, tiny_base):
    for name, card in _cards(trained_run, exported).items():
        for path in (toy_csv, tiny_base, trained_run):
            assert str(path) not in card, (name, path)
        assert not ABSOLUTE_PATH.search(card), (name, ABSOLUTE_PATH.search(card))
        data = ModelCard(card).data
        assert data.datasets is None and data.base_model is None, name  # neither is on the Hub
        (accuracy, *_) = data.eval_results
        assert accuracy.dataset_type == "local" and accuracy.dataset_name.startswith(f"{toy_csv.name} (a local file)")
        assert f"Training: {toy_csv.name} (a local file)" in card and f"{tiny_base.name} (a local model folder)" in card


def test_the_adapter_card_is_ours_and_its_snippet_loads_the_adapter(trained_run, tiny_base):
    adapter = trained_run / "adapter"
    card = (adapter / "README.md").read_text()
    data = ModelCard(card).data
    assert data.library_name == "peft" and data.pipeline_tag == "text-classification" and "peft" in data.tags
    assert "More Information Needed" not in card and "LoRA adapter" in card
    assert "sentiment merge THIS_FOLDER" in card and "sentiment export merged" in card
    accuracy = json.loads((trained_run / "metrics.json").read_text())["accuracy"]
    assert f"| accuracy | {accuracy:.4f} |" in card
    snippet = card.split("```python\n")[1].split("```")[0]
    snippet = snippet.replace(f"PATH/TO/{tiny_base.name}", str(tiny_base)).replace("THIS_REPO_OR_FOLDER", str(adapter))
    scope: dict = {}
    exec(snippet, scope)
    merged = AutoModelForSequenceClassification.from_pretrained(trained_run / "merged").eval()
    probe = scope["tokenizer"](["great wonderful film", "dull and boring"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        assert torch.allclose(scope["model"](**probe).logits, merged(**probe).logits, atol=1e-4)


def test_hub_ids_are_kept_and_a_local_eval_file_is_named(trained_run, tmp_path):
    manifest = json.loads((trained_run / "merged" / TRAINING_MANIFEST).read_text())
    manifest["base_model"] = "minilm"
    manifest["data"]["train"]["source"] = "imdb"
    manifest["data"]["validation"]["source"] = "someone/more-reviews"
    manifest["hyperparameters"] |= {"dataset": "imdb", "base_model": "minilm", "eval_file": "someone/more-reviews"}
    for kind in ("run", "merged", "adapter", "onnx"):
        card = write_model_card(tmp_path / f"{kind}.md", manifest, kind, manifest["metrics"]).read_text()
        data = ModelCard(card).data
        assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
        assert data.datasets == ["someone/more-reviews", "stanfordnlp/imdb"]
        assert data.eval_results[0].dataset_type == "someone/more-reviews"
    assert '"sentence-transformers/all-MiniLM-L6-v2", num_labels=2' in (tmp_path / "adapter.md").read_text()
    manifest["data"]["validation"]["source"] = "/data/eval/held_out.csv"
    manifest["data"]["split"] = "eval file /data/eval/held_out.csv"
    card = write_model_card(tmp_path / "eval.md", manifest, "merged", manifest["metrics"]).read_text()
    assert "/data/eval" not in card and "Split: eval file held_out.csv (a local file)" in card
    assert ModelCard(card).data.datasets == ["stanfordnlp/imdb"]


def test_a_relative_local_base_model_is_recorded_absolute_and_carded_by_folder_name(trained_run, tmp_path, monkeypatch):
    """`--base-model models/tiny-bert` from the project folder: recorded as given it reads, from anywhere
    else, as a Hub id `models/tiny-bert`; recorded absolute, every card and push knows it is a local folder."""
    (tmp_path / "models" / "tiny-bert").mkdir(parents=True)
    (tmp_path / "minilm").mkdir()
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(dataset="imdb", base_model="models/tiny-bert")
    assert cfg.base_model == str(tmp_path / "models" / "tiny-bert") and Path(cfg.base_model).is_absolute()
    assert TrainConfig(dataset="imdb", base_model="minilm").base_model == "minilm"  # the alias, not the folder
    assert TrainConfig(dataset="imdb", base_model="someone/bert").base_model == "someone/bert"  # a Hub id
    monkeypatch.chdir(trained_run)  # the card is written, and pushed, from another folder
    assert hub_model_id(cfg.base_model) is None and local_paths({"base_model": cfg.base_model}) == [cfg.base_model]
    assert model_name(cfg.base_model) == "tiny-bert (a local model folder)"
    manifest = json.loads((trained_run / "adapter" / TRAINING_MANIFEST).read_text())
    manifest["base_model"] = manifest["hyperparameters"]["base_model"] = cfg.base_model
    card = write_model_card(tmp_path / "README.md", manifest, "adapter", manifest["metrics"]).read_text()
    assert ModelCard(card).data.base_model is None and "base_model:" not in card.split("\n---\n")[0]
    assert "LoRA adapter for tiny-bert (a local model folder)" in card and '"PATH/TO/tiny-bert"' in card
    assert str(tmp_path) not in card and "models/tiny-bert" not in card


def test_a_three_class_adapter_card_loads_its_three_labels(trained_run_3class, tiny_base):
    adapter = trained_run_3class / "adapter"
    card = (adapter / "README.md").read_text()
    assert "num_labels=3, id2label={0: 'negative', 1: 'neutral', 2: 'positive'}" in card
    assert "(in output order: negative, neutral, positive)" in card
    snippet = card.split("```python\n")[1].split("```")[0]
    snippet = snippet.replace(f"PATH/TO/{tiny_base.name}", str(tiny_base)).replace("THIS_REPO_OR_FOLDER", str(adapter))
    scope: dict = {}
    exec(snippet, scope)
    merged = AutoModelForSequenceClassification.from_pretrained(trained_run_3class / "merged").eval()
    assert merged.config.id2label == {0: "negative", 1: "neutral", 2: "positive"}
    probe = scope["tokenizer"](["great wonderful film", "the plot and the cast"], return_tensors="pt", padding=True)
    with torch.inference_mode():
        assert torch.allclose(scope["model"](**probe).logits, merged(**probe).logits, atol=1e-4)
