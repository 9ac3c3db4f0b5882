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
