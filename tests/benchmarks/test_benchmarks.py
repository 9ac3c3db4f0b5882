"""The benchmark scripts' own arithmetic, checked against an independent count."""

import importlib.util
import json
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
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
    fp32, int8 = _script("bench_int8").report_rows(rows, limits, flops_per_review=2e9)
    assert fp32["share_of_ceiling"] == 0.5 and int8["share_of_ceiling"] == 0.2  # 100 and 200 GFLOP/s
    assert int8["speed_vs_fp32"] == 2.0 and int8["accuracy_vs_fp32_points"] == -0.5
