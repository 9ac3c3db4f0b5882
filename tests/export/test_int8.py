"""int8 that gives a review the same answer in any batch, calibrated on training reviews only; fused graphs quantize."""

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from review_sentiment.cli import main
from review_sentiment.export.quantize import float_matmuls
from review_sentiment.scorer import Scorer

from ..conftest import toy_reviews


def _scores_alone_batched_and_shuffled(folder, texts):
    scorer = Scorer.load(folder)
    alone = np.stack([scorer.logits([t])[0] for t in texts])
    batched = scorer.logits(texts, batch_size=16)
    order = np.random.default_rng(7).permutation(len(texts))
    shuffled = np.empty_like(batched)
    shuffled[order] = scorer.logits([texts[i] for i in order], batch_size=5)
    return [np.exp(x)[:, 1] / np.exp(x).sum(axis=1) for x in (alone, batched, shuffled)], [
        x.argmax(axis=1) for x in (alone, batched, shuffled)
    ]


def test_static_int8_scores_a_review_the_same_in_any_batch(exported):
    """Long and short reviews together, so batches pad: padding and neighbours must not move a score."""
    texts = toy_reviews(30, seed=11)["review"].tolist()
    texts += [" ".join(texts[:6]), "great", "awful dull"]
    (alone, batched, shuffled), (labels_alone, labels_batched, labels_shuffled) = _scores_alone_batched_and_shuffled(
        exported["int8"], texts
    )
    assert np.abs(alone - batched).max() <= 1e-5 and np.abs(alone - shuffled).max() <= 1e-5
    assert (labels_alone == labels_batched).all() and (labels_alone == labels_shuffled).all()
    manifest = json.loads((exported["int8"] / "manifest.json").read_text())
    assert manifest["int8"]["mode"] == "static" and manifest["int8"]["calibration"]["from"] == "the training split"


def test_static_qdq_runs_as_the_fused_int8_kernel_without_requantizing(exported, tmp_path):
    """What ONNX Runtime makes of the exported graph: every MatMul by a weight of the fp32 graph becomes a
    MatMulIntegerToFloat (the fast kernel dynamic int8 uses, here with calibrated scales), none a
    QLinearMatMul that requantizes its output; the attention products of two activations stay float."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    fp32 = onnx.load(exported["none"] / "model.onnx").graph
    weights = {init.name for init in fp32.initializer}
    by_weight = sum(n.op_type == "MatMul" and n.input[1] in weights for n in fp32.node)
    attention = sum(n.op_type == "MatMul" and n.input[1] not in weights for n in fp32.node)
    options = ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(exported["int8"] / "model.onnx"), options, providers=["CPUExecutionProvider"])
    ops = Counter(node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node)
    assert by_weight == 12 and attention == 4  # the tiny model: 2 layers × (q, k, v, output, 2 feed-forward)
    assert ops["MatMulIntegerToFloat"] == by_weight and ops["QLinearMatMul"] == 0 and ops["MatMul"] == attention


def test_calibration_uses_training_reviews_never_validation_reviews(trained_run):
    from review_sentiment.export.verify import calibration_reviews, run_reviews, validation_sample

    training = json.loads((trained_run / "merged" / "training_manifest.json").read_text())
    calibration = calibration_reviews(run_reviews(training)[0], 1000)
    validation, _ = validation_sample(training, 1000)
    assert calibration and validation and not set(calibration) & set(validation)
    assert len(calibration) == training["data"]["train"]["rows"]


def test_static_int8_without_its_training_data_says_what_to_do(trained_run, tmp_path, capsys):
    merged = tmp_path / "merged"
    import shutil

    shutil.copytree(trained_run / "merged", merged)
    manifest = json.loads((merged / "training_manifest.json").read_text())
    manifest["hyperparameters"]["dataset"] = str(tmp_path / "gone.csv")
    (merged / "training_manifest.json").write_text(json.dumps(manifest))
    assert main(["export", str(merged), "--output", str(tmp_path / "out"), "--quantize", "int8"]) == 2
    assert "--int8-mode dynamic" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("optimize", "mode"), [("O2", "static"), ("O2", "dynamic"), ("O3", "static")])
def test_fused_graphs_quantize(trained_run, tmp_path, optimize, mode):
    """Optimization levels combine with int8 (the quantizer used to stop on the fused graph's untyped tensors)."""
    out = tmp_path / f"{optimize}-{mode}"
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--quantize", "int8"]
    args += ["--optimize", optimize, "--int8-mode", mode, "--validation-samples", "40"]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["optimization"] == optimize and manifest["int8"]["mode"] == mode
    assert manifest["export_check"]["variants"][-1]["agreement"] >= 0.9
    written = {node.op_type for node in onnx.load(out / "model.onnx").graph.node}
    assert not {"SkipLayerNormalization", "BiasGelu"} & written  # slower on int8: left out, as on a CPU session
    if mode == "static":
        # Every weight MatMul int8 with int8 input, query/key/value included (they used to stay float:
        # the quantizer could not type the fused graph's tensors and skipped them).
        ops = _runtime_ops(out / "model.onnx", tmp_path / "runtime.onnx")
        assert float_matmuls(out / "model.onnx") == [] and ops["MatMulIntegerToFloat"] == 12
        assert ops["MultiHeadAttention"] == 2 and ops["Attention"] == 0
        texts = [*toy_reviews(20, seed=13)["review"].tolist(), "great", "awful dull"]
        (alone, batched, shuffled), _ = _scores_alone_batched_and_shuffled(out, texts)
        assert np.abs(alone - batched).max() <= 1e-5 and np.abs(alone - shuffled).max() <= 1e-5


def test_o1_int8_is_optimized(exported, trained_run, tmp_path):
    """--optimize O1 runs ONNX Runtime's basic optimizations before quantizing: a smaller graph than without."""
    out = tmp_path / "O1"
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--quantize", "int8", "--optimize", "O1"]
    assert main([*args, "--validation-samples", "40"]) == 0
    nodes = [len(onnx.load(folder / "model.onnx").graph.node) for folder in (out, exported["int8"])]
    assert nodes[0] < nodes[1]


def _runtime_ops(model_file, saved):
    """The operators ONNX Runtime runs for `model_file` (after its own fusions), by type."""
    from collections import Counter

    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.optimized_model_filepath = str(saved)
    ort.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
    return Counter(node.op_type for node in onnx.load(saved).graph.node)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_fused_attention_honours_a_mask_with_holes(trained_run, exported, tmp_path, quantize):
    """The explainer masks words in the middle of a review; fused attention must mask those tokens, not
    read the mask as a row length (ONNX Runtime's default mask index)."""
    out = tmp_path / "O2"
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--optimize", "O2"]
    assert main([*args, "--quantize", quantize, "--validation-samples", "40"]) == 0
    fused, plain = Scorer.load(out), Scorer.load(exported[quantize])
    ids = fused.encoder.encode([" ".join(toy_reviews(8, seed=14)["review"])])[0]
    masks = np.ones((4, len(ids)), dtype=np.int64)
    for row, (start, stop) in enumerate([(1, 4), (5, 12), (2, 3), (len(ids) - 3, len(ids) - 1)]):
        masks[row, start:stop] = 0
    assert np.abs(fused.run_masked(ids, masks) - plain.run_masked(ids, masks)).max() <= (
        1e-4 if quantize == "none" else 0.05
    )
    assert fused.manifest["attention_mask"] == "raw"


def test_an_export_fused_on_row_lengths_is_named_when_loaded(exported, tmp_path, caplog):
    """Exports made before the fix read a mask with holes as a row length; loading one says so."""
    import shutil

    old = tmp_path / "old-O2"
    shutil.copytree(exported["none"], old)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "optimization": "O2"}))
    Scorer.load(old)
    assert "attention fused on each row's length, not its mask" in caplog.text
    caplog.clear()
    (old / "manifest.json").write_text(json.dumps({**manifest, "optimization": "O2", "attention_mask": "raw"}))
    Scorer.load(old)
    assert "row's length" not in caplog.text


def test_qoperator_format_is_batch_independent_too(trained_run, tmp_path):
    out = tmp_path / "qop"
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--quantize", "int8", "--int8-format"]
    assert main([*args, "qoperator", "--validation-samples", "40"]) == 0
    texts = [*toy_reviews(20, seed=12)["review"].tolist(), "great"]
    (alone, batched, shuffled), _ = _scores_alone_batched_and_shuffled(out, texts)
    assert np.abs(alone - batched).max() <= 1e-5 and np.abs(alone - shuffled).max() <= 1e-5


def test_the_export_records_its_calibration_and_the_scorer_applies_a_temperature(
    exported, bag_of_words_model, tmp_path
):
    # The toy run holds out 16 reviews: too few to fit a temperature, and the folder says so.
    manifest = json.loads((exported["int8"] / "manifest.json").read_text())
    assert manifest["temperature"] == 1.0 and manifest["calibration"]["applied"] is False
    assert "too few validation reviews (16 < 100)" in manifest["calibration"]["reason"]
    assert "Confidence is not rescaled (temperature 1): too few" in (exported["int8"] / "README.md").read_text()

    import shutil

    hot = tmp_path / "hot"
    shutil.copytree(bag_of_words_model, hot)
    edited = json.loads((hot / "manifest.json").read_text())
    edited["temperature"] = 4.0
    (hot / "manifest.json").write_text(json.dumps(edited))
    texts = ["great wonderful", "awful", "great but awful dull"]
    raw, cooled = Scorer.load(bag_of_words_model).predict(texts), Scorer.load(hot).predict(texts)
    assert [p.label for p in raw] == [p.label for p in cooled]
    raw_logits = Scorer.load(bag_of_words_model).logits(texts)
    assert np.allclose(Scorer.load(hot).logits(texts), raw_logits / 4.0, atol=1e-6)
    assert all(c.confidence < r.confidence for r, c in zip(raw, cooled, strict=True) if r.confidence > 0.5)


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods_export(trained_run, tmp_path, method):
    out = tmp_path / method
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--quantize", "int8"]
    assert main([*args, "--calibration-method", method, "--validation-samples", "40"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["int8"]["calibration"]["method"] == method
    assert manifest["export_check"]["variants"][-1]["agreement"] >= 0.9


def test_evaluate_shows_an_exported_folders_temperature(bag_of_words_model, tmp_path, capsys):
    import shutil

    hot = tmp_path / "hot"
    shutil.copytree(bag_of_words_model, hot)
    manifest = json.loads((hot / "manifest.json").read_text())
    (hot / "manifest.json").write_text(json.dumps({**manifest, "temperature": 4.0}))
    data = tmp_path / "labelled.csv"
    toy_reviews(60, seed=21).to_csv(data, index=False)
    assert main(["evaluate", str(hot), "--dataset", str(data), "--output", str(tmp_path / "ev")]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["temperature"] == 4.0
    served = Scorer.load(hot).predict(toy_reviews(60, seed=21)["review"].tolist())
    top = max(p.confidence for p in served)
    assert metrics["coverage"][-1]["threshold"] <= top + 1e-6  # thresholds are the calibrated confidences


def test_the_card_gives_the_calibration_error_even_without_a_temperature():
    from review_sentiment.export.verify import _calibration_line

    kept = {"applied": False, "reason": "a temperature does not improve the held-out likelihood", "ece_bins": 15}
    line = _calibration_line({**kept, "ece_before": 0.0174, "brier_before": 0.0653, "reviews": 1000})
    assert line.startswith("Confidence is not rescaled (temperature 1): a temperature does not improve")
    assert "Expected calibration error (15 bins) 0.0174, Brier score 0.0653 on 1000 validation reviews." in line


def test_calibration_in_strides_gives_the_ranges_of_one_pass(exported, tmp_path, monkeypatch):
    """The quantizer reads calibration reviews 16 at a time (a histogram method held every activation of all
    of them at once: 20 GB for 256 reviews); MinMax ranges merged stride by stride equal one pass's."""
    import onnx

    from review_sentiment.export import quantize

    scorer = Scorer.load(exported["none"])
    ids = scorer.encoder.encode(toy_reviews(40, seed=15)["review"].tolist())
    assert quantize._strides(40) == {"CalibStridedMinMax": 10} and quantize._strides(17) == {"CalibStridedMinMax": 1}
    ranges, set_range = [], quantize._Calibration.set_range
    monkeypatch.setattr(
        quantize._Calibration,
        "set_range",
        lambda self, start_index, end_index: (
            ranges.append((start_index, end_index)),
            set_range(self, start_index, end_index),
        ),
    )
    strided = quantize.quantize_static_int8(exported["none"], "avx512vnni", True, tmp_path / "strided", ids)
    assert ranges == [(0, 10), (10, 20), (20, 30), (30, 40)]
    monkeypatch.setattr(quantize, "CALIBRATION_STRIDE", 40)  # one stride of all 40: one pass
    whole = quantize.quantize_static_int8(exported["none"], "avx512vnni", True, tmp_path / "whole", ids)
    scales = lambda path: {  # noqa: E731
        i.name: onnx.numpy_helper.to_array(i).tolist() for i in onnx.load(path).graph.initializer if "scale" in i.name
    }
    assert scales(strided) == scales(whole) and len(scales(whole)) > 20


def test_a_static_export_that_leaves_weights_in_float_fails_in_one_line(trained_run, tmp_path, monkeypatch, capsys):
    """Without typing the fused graph first, the quantizer skips what it cannot type (the old O2 + int8)."""
    from review_sentiment.export import quantize

    monkeypatch.setattr(quantize, "typed_graph", lambda source, out: source)
    out = tmp_path / "O2"
    args = ["export", str(trained_run / "merged"), "--output", str(out), "--optimize", "O2", "--quantize", "int8"]
    assert main([*args, "--validation-samples", "40"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert re.match(r"error: static int8 left [1-9]\d* weight MatMuls of this graph in float \(", error)
    assert error.endswith(
        ", ...): the model would run slower than fp32. Export without --optimize, or with --int8-mode dynamic"
    )
    assert not out.exists()


def _kernels_run(model_file, tmp_path, name, provider="cpu"):
    """The operator types a session made by `create_session` really runs, from ONNX Runtime's profiler."""
    from review_sentiment.providers import create_session

    session = create_session(model_file, provider, profile_prefix=tmp_path / name)
    feeds = {i.name: np.ones((2, 9), dtype=np.int64) for i in session.get_inputs()}
    logits = session.run(None, feeds)[0]
    events = json.loads(Path(session.end_profiling()).read_text())
    return {e["args"]["op_name"] for e in events if e.get("cat") == "Node"}, logits


@pytest.mark.parametrize("provider", ["cpu", "auto"])  # auto: what every user without --provider gets
def test_a_cpu_session_leaves_out_the_fusions_slower_on_int8_graphs(exported, tmp_path, monkeypatch, provider):
    """ONNX Runtime's SkipLayerNormalization and BiasGelu kernels take longer on an int8 graph than the Add,
    LayerNormalization and Gelu they fuse: the scorer's CPU sessions run the plain operators. On this tiny model
    the logits agree; on a real one a float rounding can move an activation across an int8 step."""
    from review_sentiment import providers

    model = exported["int8"] / "model.onnx"
    plain, logits = _kernels_run(model, tmp_path, "plain", provider)
    monkeypatch.setattr(providers, "CPU_SLOWER_FUSIONS", ())
    fused, fused_logits = _kernels_run(model, tmp_path, "fused")
    assert {"SkipLayerNormalization", "BiasGelu"} <= fused  # what ONNX Runtime makes of this graph on its own
    assert not {"SkipLayerNormalization", "BiasGelu"} & plain and {"LayerNormalization", "Gelu"} <= plain
    np.testing.assert_allclose(logits, fused_logits, atol=1e-5)
