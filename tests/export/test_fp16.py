"""fp16 export: fused for the GPU without being optimized for the CPU, checked against fp32, never skipped."""

import json

import numpy as np
import onnx
import pytest

from review_sentiment.cli import main
from review_sentiment.errors import UserError
from review_sentiment.export import verify

from ..conftest import skip_without_gpu


def _export_fp16(run, out, *extra) -> int:
    return main(["export", str(run / "merged"), "--output", str(out), "--quantize", "fp16", *extra])


@pytest.fixture(scope="module")
def fp16_folder(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("fp16") / "model"
    assert _export_fp16(trained_run, out, "--validation-samples", "40") == 0
    return out


@pytest.fixture(scope="module")
def optimizer_calls(trained_run, tmp_path_factory):
    """The opt_level and use_gpu that Optimum passes to ONNX Runtime's optimize_model for an fp16 export."""
    import onnxruntime.transformers.optimizer as ort_optimizer
    import optimum.onnxruntime.optimization as optimization

    calls, real = [], ort_optimizer.optimize_model

    def spy(*args, **kwargs):
        calls.append({k: kwargs.get(k) for k in ("opt_level", "use_gpu", "only_onnxruntime")})
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(optimization, "optimize_model", spy)
        assert _export_fp16(trained_run, tmp_path_factory.mktemp("spied") / "m", "--validation-samples", "0") == 0
    return calls


def test_fp16_graphs_are_fused_in_python_never_by_the_offline_optimizer(optimizer_calls):
    # opt_level 0 with Python fusions: ONNX Runtime's offline optimizer would tune the graph for this
    # machine's provider (the CPU, where no CUDA session starts), not for the GPU that serves it.
    assert optimizer_calls == [{"opt_level": 0, "use_gpu": True, "only_onnxruntime": False}]


def test_fp16_with_o1_is_refused(trained_run, tmp_path, capsys):
    assert _export_fp16(trained_run, tmp_path / "out", "--optimize", "O1") != 0
    assert "--quantize fp16 is fused with --optimize O2 (default) or O3, not O1" in capsys.readouterr().err


def _moved(folder, tmp_path, **export_check):
    """A copy of an exported folder on a machine without its source model, with export_check entries replaced."""
    import shutil

    copy = tmp_path / "moved"
    shutil.copytree(folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["source_model"] = str(tmp_path / "gone")
    manifest["export_check"].update(export_check)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy, manifest


def test_check_on_another_machine_compares_fp16_with_the_recorded_fp32_logits(fp16_folder, tmp_path, capsys):
    copy, manifest = _moved(fp16_folder, tmp_path)
    assert main(["export", "--check", str(copy)]) == 0
    assert "100.00%" in capsys.readouterr().out  # agreement with the recorded fp32 logits, not "n/a"
    recorded = np.asarray(manifest["export_check"]["fp32_probe_logits"])
    shifted = (recorded + np.array([0.2, 0.0])).tolist()
    copy, _ = _moved(fp16_folder, tmp_path / "shifted", fp32_probe_logits=shifted)
    assert main(["export", "--check", str(copy)]) != 0
    assert "max |Δlogit| 2.00e-01" in capsys.readouterr().err
    copy, _ = _moved(fp16_folder, tmp_path / "none", fp32_probe_logits=None)
    assert main(["export", "--check", str(copy)]) != 0
    assert "an fp16 export must be compared with fp32" in capsys.readouterr().err


def test_fp16_export_is_half_precision_fused_and_checked_against_fp32(fp16_folder):
    graph = onnx.load(fp16_folder / "model.onnx").graph
    weights = [w for w in graph.initializer if len(w.dims) == 2]
    assert weights and all(w.data_type == onnx.TensorProto.FLOAT16 for w in weights)
    ops = {(node.domain, node.op_type) for node in graph.node}
    assert ("com.microsoft", "Attention") in ops  # Python fusions ran
    # ONNX Runtime's offline CPU optimizer was not run: it would leave CPU-only nodes in a GPU graph.
    assert not {op for domain, op in ops if op.startswith("Fused") or op in ("QuickGelu", "NhwcConv")}
    manifest = json.loads((fp16_folder / "manifest.json").read_text())
    fp32_row, fp16_row = manifest["export_check"]["variants"]
    assert manifest["quantization"] == "fp16" and fp16_row["variant"] == "fp16"
    assert fp16_row["agreement"] >= verify.FP16_MIN_AGREEMENT
    assert fp16_row["max_abs_logit_diff"] <= verify.FP16_MAX_LOGIT_DIFF
    # Every check figure says which provider produced it.
    assert fp32_row["provider"] == manifest["export_check"]["fp32_vs_pytorch_provider"] == "CPUExecutionProvider"
    assert fp16_row["provider"] in ("CPUExecutionProvider", "CUDAExecutionProvider")


def test_fp16_that_strays_from_fp32_fails_the_export_and_writes_nothing(trained_run, tmp_path, monkeypatch, capsys):
    real_measure = verify.measure

    def drifting(folder, texts, labels, reference, cleaned=False):
        row = real_measure(folder, texts, labels, reference, cleaned)
        if row["variant"] == "fp16":
            row["max_abs_logit_diff"] = 0.2  # as a broken fp16 graph would
        return row

    monkeypatch.setattr("review_sentiment.export.pipeline.measure", drifting)
    assert _export_fp16(trained_run, tmp_path / "out", "--validation-samples", "40") != 0
    assert "fp16 agrees with fp32 on 100.00% of labels (needs ≥ 99% from 100 reviews), max |Δlogit| 2.00e-01" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "out").exists()


def test_a_graph_that_does_not_load_fails_the_export(trained_run, tmp_path, monkeypatch, capsys):
    from review_sentiment.scorer import Scorer

    real_load = Scorer.load

    def fp16_cannot_load(folder, provider="auto", *args, **kwargs):
        if "optimized" in str(folder):
            raise UserError(f"could not load {folder}/model.onnx into ONNX Runtime: no kernel for Attention(fp16)")
        return real_load(folder, provider, *args, **kwargs)

    monkeypatch.setattr(verify.Scorer, "load", staticmethod(fp16_cannot_load))
    assert _export_fp16(trained_run, tmp_path / "out", "--validation-samples", "40") != 0
    assert "no kernel for Attention(fp16)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
def test_fp16_export_runs_and_matches_fp32_on_cuda(fp16_folder):
    import onnxruntime as ort

    from review_sentiment.providers import may_have_nvidia_gpu
    from review_sentiment.scorer import Scorer

    if "CUDAExecutionProvider" not in ort.get_available_providers() or not may_have_nvidia_gpu():
        skip_without_gpu("this test needs onnxruntime-gpu and an NVIDIA GPU")
    manifest = json.loads((fp16_folder / "manifest.json").read_text())
    assert manifest["export_check"]["variants"][1]["provider"] == "CUDAExecutionProvider"
    texts = ["a wonderful film", "dull and far too long", "ok"]
    gpu = Scorer.load(fp16_folder, "cuda", calibrated=False).logits(texts)
    cpu = Scorer.load(fp16_folder, "cpu", calibrated=False).logits(texts)
    assert np.abs(gpu - cpu).max() <= verify.FP16_MAX_LOGIT_DIFF
