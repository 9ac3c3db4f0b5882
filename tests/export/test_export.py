import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from review_sentiment.cli import main
from review_sentiment.errors import UserError
from review_sentiment.manifest import MANIFEST_SCHEMA, validate_manifest
from review_sentiment.scorer import Scorer

from ..conftest import toy_reviews


def test_fp32_export_matches_pytorch_and_manifest_is_complete(exported, trained_run):
    manifest = json.loads((exported["none"] / "manifest.json").read_text())
    validate_manifest(manifest)
    assert set(MANIFEST_SCHEMA) <= set(manifest)
    assert manifest["export_check"]["fp32_vs_pytorch_max_abs_logit_diff"] <= 1e-4
    training = json.loads((trained_run / "merged" / "training_manifest.json").read_text())
    assert manifest["text_spec"] == training["text_spec"]
    assert manifest["validation_metrics"]["accuracy"] == training["metrics"]["accuracy"]
    card = (exported["none"] / "README.md").read_text()
    assert "library_name: onnx" in card and "pipeline_tag: text-classification" in card


def test_int8_is_smaller_and_agrees_with_fp32(exported):
    int8 = json.loads((exported["int8"] / "manifest.json").read_text())
    assert int8["quantization"] == "int8" and int8["int8_target"] in ("avx512_vnni", "avx512", "avx2", "arm64")
    fp32_row, int8_row = int8["export_check"]["variants"]
    assert int8_row["agreement"] >= 0.9
    assert int8_row["size_mb"] < fp32_row["size_mb"]
    texts = toy_reviews(40, seed=5)["review"].tolist()
    fp32_labels = [p.label for p in Scorer.load(exported["none"]).predict(texts)]
    int8_labels = [p.label for p in Scorer.load(exported["int8"]).predict(texts)]
    assert np.mean(np.array(fp32_labels) == np.array(int8_labels)) >= 0.9


def test_corrupted_model_file_is_refused(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported["none"], broken)
    data = bytearray((broken / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (broken / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(UserError, match="does not match the sha256"):
        Scorer.load(broken)


def test_invalid_manifest_names_the_problem(exported, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(exported["none"], broken)
    manifest = json.loads((broken / "manifest.json").read_text())
    del manifest["text_spec"]
    manifest["quantization"] = "int4"
    (broken / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"text_spec missing; quantization is 'int4', not one of none, int8, fp16"):
        Scorer.load(broken)


def test_exported_folder_scores_without_torch_or_transformers(exported):
    code = (
        "import sys; from review_sentiment.scorer import Scorer\n"
        f"scorer = Scorer.load({str(exported['int8'])!r})\n"
        "p = scorer.predict('great wonderful loved it')\n"
        "assert isinstance(p.score, float) and p.label in ('negative', 'positive')\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, sorted(sys.modules)\n"
        "print(p.label)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "positive"


def test_adapter_folder_export_equals_merged_export(exported, trained_run, tmp_path):
    out = tmp_path / "from-adapter"
    assert main(["export", str(trained_run / "adapter"), "--output", str(out), "--validation-samples", "0"]) == 0
    texts = toy_reviews(20, seed=9)["review"].tolist()
    from_adapter = Scorer.load(out, calibrated=False).logits(texts)
    from_merged = Scorer.load(exported["none"], calibrated=False).logits(texts)
    np.testing.assert_allclose(from_adapter, from_merged, atol=1e-5)


def test_check_reverifies_and_refusals_are_clear(exported, trained_run, tmp_path, capsys):
    assert main(["export", "--check", str(exported["none"])]) == 0
    assert "fp32" in capsys.readouterr().out
    assert main(["export", str(trained_run / "merged"), "--output", str(exported["none"])]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    (tmp_path / "junk").mkdir()
    assert main(["export", str(tmp_path / "junk"), "--output", str(tmp_path / "o")]) == 2
    assert "neither a merged model folder nor a LoRA adapter folder" in capsys.readouterr().err


def test_evaluate_scores_an_exported_folder_like_the_pytorch_model(exported, trained_run, tmp_path):
    """With the temperature set aside (it rescales scores, never labels), ONNX and PyTorch agree."""
    data = tmp_path / "labelled.csv"
    toy_reviews(40, seed=4).to_csv(data, index=False)
    uncalibrated = tmp_path / "uncalibrated"
    shutil.copytree(exported["none"], uncalibrated)
    manifest = json.loads((uncalibrated / "manifest.json").read_text())
    (uncalibrated / "manifest.json").write_text(json.dumps({**manifest, "temperature": 1.0}))
    assert main(["evaluate", str(uncalibrated), "--dataset", str(data), "--output", str(tmp_path / "onnx")]) == 0
    assert (
        main(["evaluate", str(trained_run / "merged"), "--dataset", str(data), "--output", str(tmp_path / "pt")]) == 0
    )
    onnx_metrics = json.loads((tmp_path / "onnx" / "metrics.json").read_text())
    torch_metrics = json.loads((tmp_path / "pt" / "metrics.json").read_text())
    assert onnx_metrics["confusion_matrix"] == torch_metrics["confusion_matrix"]
    assert onnx_metrics["roc_auc"] == pytest.approx(torch_metrics["roc_auc"], abs=1e-6)


def test_export_accuracy_equals_evaluate_on_the_same_reviews(exported, trained_run, tmp_path):
    import pandas as pd

    from review_sentiment.export.verify import validation_sample

    training = json.loads((trained_run / "merged" / "training_manifest.json").read_text())
    texts, labels = validation_sample(training, 40)
    data = tmp_path / "validation.csv"
    pd.DataFrame({"review": texts, "sentiment": labels}).to_csv(data, index=False)
    for variant in ("none", "int8"):
        out = tmp_path / variant
        assert main(["evaluate", str(exported[variant]), "--dataset", str(data), "--output", str(out)]) == 0
        evaluated = json.loads((out / "metrics.json").read_text())
        manifest = json.loads((exported[variant] / "manifest.json").read_text())
        measured = manifest["export_check"]["variants"][-1]
        assert measured["reviews"] == evaluated["count"] == len(texts)
        assert measured["accuracy"] == pytest.approx(evaluated["accuracy"], abs=1e-12)
        assert manifest["validation_metrics"]["accuracy"] == measured["accuracy"]


def test_measure_scores_each_review_against_its_own_label(exported):
    from review_sentiment.export.verify import measure

    texts = toy_reviews(30, seed=8)["review"].tolist()
    logits = Scorer.load(exported["none"], calibrated=False).logits(texts)
    own = logits.argmax(axis=1)
    row = measure(exported["none"], texts, own, logits)
    assert row["accuracy"] == 1.0 and row["agreement"] == 1.0 and row["max_abs_logit_diff"] == 0.0
    assert measure(exported["none"], texts, 1 - own, logits)["accuracy"] == 0.0


def test_model_card_shows_the_served_variants_figures(exported):
    card = (exported["int8"] / "README.md").read_text()
    manifest = json.loads((exported["int8"] / "manifest.json").read_text())
    assert "nan" not in card.lower() and "model-index:" in card
    accuracy = manifest["validation_metrics"]["accuracy"]
    assert f"{{type: accuracy, value: {accuracy:.4f}}}" in card and f"| accuracy | {accuracy:.4f} |" in card
    assert "Measured on: int8 ONNX" in card


def test_a_swapped_tokenizer_is_refused(exported, tmp_path):
    broken = tmp_path / "swapped"
    shutil.copytree(exported["none"], broken)
    tokenizer = json.loads((broken / "tokenizer.json").read_text())
    tokenizer["normalizer"] = None  # a different tokenizer: same shape, other token ids
    (broken / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(UserError, match=r"tokenizer.json does not match the sha256"):
        Scorer.load(broken)


def test_an_export_can_read_more_tokens_than_training_did_but_not_more_than_the_model_has(trained_run, tmp_path):
    out = tmp_path / "longer"
    args = ["export", str(trained_run / "merged"), "--validation-samples", "0", "--quantize", "none"]
    assert main([*args, "--output", str(out), "--max-length", "96"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["text_spec"]["max_length"] == 96 and manifest["hyperparameters"]["max_length"] == 48
    long_review = " ".join(["great"] * 20 + ["the film was quite boring"] * 20)
    assert len(Scorer.load(out).encoder.encode([long_review])[0]) == 96
    assert "trained reading 48; the export reads 96" in (out / "README.md").read_text()
    assert main([*args, "--output", str(tmp_path / "too-long"), "--max-length", "200"]) == 2  # 128 positions
    assert not (tmp_path / "too-long").exists()
