"""The benchmark scripts' own arithmetic, checked against an independent count."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    if str(SCRIPTS) not in sys.path:  # as when a script runs: its folder first on the path (bench_common)
        sys.path.insert(0, str(SCRIPTS))
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_model_flops_equals_torchs_flop_counter_on_the_encoder(tiny_base):
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertModel

    config = json.loads((tiny_base / "config.json").read_text())
    model = BertModel.from_pretrained(tiny_base, attn_implementation="eager").eval()
    lengths = [17, 17, 9]  # padded lengths of the sequences actually run
    counted = 0
    for length in set(lengths):
        hidden = torch.randn(lengths.count(length), length, config["hidden_size"])
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model.encoder(hidden)
        counted += counter.get_total_flops()
    assert _script("bench_scoring").model_flops(config, lengths) == counted


def test_int8_table_shares_and_ratios(monkeypatch):
    """Each variant's share of its ceiling is FLOPs per review × reviews/s over the ceiling of its arithmetic."""
    monkeypatch.syspath_prepend(str(SCRIPTS))  # bench_int8 imports bench_scoring as its neighbour
    rows = [
        {"variant": "fp32", "accuracy": 0.9, "reviews_per_s": 50.0},
        {"variant": "int8 static QDQ", "accuracy": 0.895, "reviews_per_s": 100.0},
    ]
    limits = {"fp32_matmul_gops": 200.0, "int8_matmulinteger_gops": 1000.0}
    fp32, int8 = _script("bench_int8").report_rows(rows, limits, flops=(1.6e9, 0.4e9))
    assert fp32["share_of_ceiling"] == 0.5 and int8["share_of_ceiling"] == 0.2  # 100 and 200 GFLOP/s
    assert int8["speed_vs_fp32"] == 2.0 and int8["accuracy_vs_fp32_points"] == -0.5
    # The mix's bound: 1.6 GFLOP at 1000/s and 0.4 at 200/s take 3.6 ms a review, 277.8 reviews/s; 100 is 36%.
    assert int8["share_of_mixed_bound"] == 0.36 and "share_of_mixed_bound" not in fp32


def test_sections_without_new_measurements_are_kept_as_they_were(tmp_path):
    old = tmp_path / "BENCHMARKS.md"
    old.write_text(
        "# Benchmarks\n\nintro\n\n## int8 variants (`benchmarks/bench_int8.py`, 2026-12-02)\n| a | b |\n| 1 | 2 |\n\n"
        "## Install size and start-up (`benchmarks/bench_install.py`, 2026-12-01)\nserving 490 MB\n\n"
    )
    kept = _script("render_benchmarks").kept_sections(old)
    assert kept["## int8 variants"] == [
        "## int8 variants (`benchmarks/bench_int8.py`, 2026-12-02)",
        "| a | b |",
        "| 1 | 2 |",
    ]
    assert kept["## Install size and start-up"][-1] == "serving 490 MB"
    assert "# Benchmarks" not in kept and _script("render_benchmarks").kept_sections(tmp_path / "none.md") == {}


def test_load_summary_counts_every_call_and_times_only_answers():
    results = [{"endpoint": "/predict", "ms": ms, "error": None} for ms in (10.0, 20.0, 30.0, 40.0)]
    results += [{"endpoint": "/predict", "ms": 5000.0, "error": "QueueError: queue full"}]
    results += [{"endpoint": "/analyze", "ms": 100.0, "error": None}]
    rows = {r["endpoint"]: r for r in _script("bench_load").summarize(results, seconds=2.0)}
    assert rows["/predict"]["calls"] == 5 and rows["/predict"]["errors"] == 1 and rows["/predict"]["calls_per_s"] == 2.5
    assert rows["/predict"]["p50_ms"] == 25.0 and rows["/predict"]["max_ms"] == 40.0  # the failed call is not timed
    assert rows["/analyze"] == {
        "endpoint": "/analyze", "calls": 1, "errors": 0, "calls_per_s": 0.5, "p50_ms": 100.0, "p95_ms": 100.0,
        "max_ms": 100.0,
    }  # fmt: skip


def _kernel(op: str, node: str, micros: float, at: float = 100) -> dict:
    return {"cat": "Node", "name": f"{node}_kernel_time", "ts": at, "dur": micros, "args": {"op_name": op}}


def test_profile_shares_are_the_profilers_kernel_durations_summed():
    profile = _script("profile_scoring")
    self_ = "/bert/encoder/layer.0/attention/self"
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0, "dur": 50},  # the warm-up run: left out
        _kernel("MatMul", f"{self_}/MatMul", 40, at=5),
        {"cat": "Session", "name": "model_run", "ts": 60, "dur": 1500},
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 9000},  # not a run
        _kernel("MatMulIntegerToFloat", f"{self_}/query/MatMul_quant", 300),
        _kernel("MatMul", f"{self_}/MatMul", 120),
        _kernel("MatMul", "/bert/encoder/layer.1/attention/self/MatMul_1", 80),
        _kernel("Add", f"{self_}/Add", 100),  # the mask
        _kernel("Softmax", f"{self_}/Softmax", 150),
        _kernel("Add", "/bert/encoder/layer.0/attention/output/Add", 50),  # the residual: not attention's own
        _kernel("Reshape", f"{self_}/query/Reshape", 100),  # under a projection: not attention's own
        _kernel("Transpose", f"{self_}/Transpose_1", 100),  # heads moved for Q·Kᵀ: attention's own
        # quantizes the context for the int8 output projection: the projection's, not attention's own
        _kernel("QuantizeLinear", f"{self_}/Reshape_3_output_0_QuantizeLinear", 250),
    ]
    by_node, run_micros = profile.kernel_times(events)
    assert run_micros == 1500 and sum(by_node.values()) == 1250
    result = profile.shares(by_node)
    assert result["attention_core"] == 0.44  # 120 + 80 + 100 + 150 + 100 of 1250
    assert result["groups"] == {
        "int8 linear": 0.24,
        "quantize/dequantize": 0.2,
        "float MatMul": 0.16,
        "other (reshape, transpose, gather, ...)": 0.16,
        "elementwise (add, mul, where)": 0.12,
        "softmax": 0.12,
    }
    assert result["ops"]["MatMul"] == 0.16 and result["ops"]["Add"] == 0.12
    # a fused Attention holds the projections: attention's own share cannot be told apart
    assert profile.shares({("Attention", "Attention_0"): 10.0, ("Add", "x"): 10.0})["attention_core"] is None
    assert profile.shares({("MultiHeadAttention", "Mha_0"): 10.0, ("Add", "x"): 30.0})["attention_core"] == 0.25
    # BENCHMARKS.md has a column for every group the profile can report, so no share goes unshown
    assert set(_script("render_benchmarks").PROFILE_GROUPS) == {*profile.GROUPS, profile.OTHER}


def test_profile_reads_onnxruntimes_own_profile_of_an_int8_export(exported, tmp_path):
    """The event names the profile sums are the ones this onnxruntime writes (a renamed event would sum to 0)."""
    from review_sentiment.scorer import Scorer

    scorer = Scorer.load(exported["int8"], provider="cpu")
    plain = scorer.session
    texts = [f"review number {i} was {'great' if i % 2 else 'awful'} " * (1 + i % 5) for i in range(12)]
    row = _script("profile_scoring").measure(scorer, texts, 4, tmp_path)
    assert row["kernel_seconds"] > 0 and 0 < row["inside_runs"] < 1, row
    assert row["groups"]["int8 linear"] > 0 and row["groups"]["float MatMul"] > 0 and row["attention_core"] > 0
    assert scorer.session is plain  # the scorer's own session is back


def test_candidates_table_judges_the_bundled_model_and_each_candidate_alike(tmp_path, monkeypatch):
    render = _script("render_benchmarks")
    monkeypatch.setattr(render, "OUT", tmp_path)

    def model(method: str, lr: float, accuracy: float) -> dict:
        return {
            "created": "2026-12-05T10:00:00Z",
            "hyperparameters": {"method": method, "lr": lr},
            "training_metrics": {"accuracy": accuracy, "roc_auc": 0.98},
            "training": {"epochs_completed": 2.0, "best_step": 2000},
            "text_spec": {"max_length": 384},
            "data": {"split": "stratified 10% hold-out, seed 42"},
        }

    evaluation = {"count": 2500, "accuracy": 0.9, "roc_auc": 0.97, "brier": 0.05, "ece": 0.01}
    (tmp_path / "candidates").mkdir()
    (tmp_path / "candidates" / "full.manifest.json").write_text(json.dumps(model("full", 1e-4, 0.93)))
    (tmp_path / "candidates" / "full.evaluate.json").write_text(json.dumps({**evaluation, "accuracy": 0.928}))
    lines = render.candidates_section(model("lora", 5e-4, 0.9229), evaluation)
    assert "one standard error of the bundled model's int8 accuracy here is 0.60 points" in lines[1]  # √(.9·.1/2500)
    assert lines[-2] == "| bundled | LoRA | 0.0005 | 2.0 (2000) | 92.29% | 0.9800 | 90.00% | 0.9700 | 0.0500 | 0.0100 |"
    assert lines[-1].startswith("| full | full fine-tuning | 0.0001 | 2.0 (2000) | 93.00% | 0.9800 | 92.80% |")


def test_scoring_ratios_are_against_the_faster_pipeline_run():
    """A pipeline is faster at its own default (one review a call) than at 32 here: ours is compared with that."""
    render = _script("render_benchmarks")

    def row(name, batch, speed, ratio):
        return {"name": name, "batch": batch, "reviews_per_s": speed, "ratio_to_pipeline": ratio, "accuracy": 0.9}

    scoring = {
        "samples": 10,
        "results": [
            row("(a) transformers pipeline, PyTorch", "1 a call", 30.0, 1.0),
            row("(a) transformers pipeline, PyTorch", "32 a call", 20.0, 0.67),
            row("(c) ours, int8", "up to 512 tokens a call", 90.0, 3.0),
            row("(c) ours, int8", "32 reviews a call", 60.0, 2.0),
            row("(c) ours, int8, every ONNX Runtime fusion", "up to 512 tokens a call", 96.0, 3.2),  # not what ships
        ],
    }
    assert _script("bench_common").fastest_pipeline(scoring["results"])["batch"] == "1 a call"
    line = render._scoring_line(scoring)
    assert "ours, int8 90.0 reviews/s = 3.00× a transformers pipeline" in line and "(30.0 reviews/s" in line
    assert line.endswith("; 1.50× the same model in 32-review calls.")
    assert "int8 90.0 reviews/s against 96.0 with every fusion (0.94×)" in render._fusion_gain(scoring["results"])[0]
