"""What --resume checks before it continues: options and precision of checkpoints written before they were
recorded, and bf16 resumed where it is only emulated; torch.cuda faked where a test needs a GPU."""

import json
import logging

import pytest
import torch

from review_sentiment.cli import main
from review_sentiment.train.config import RESUME_FREE, TrainConfig
from review_sentiment.train.prepare import _changed_options, _resumed_dtype, loss_scaler

from ..conftest import train_args
from .test_devices import _fake_gpu

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _make_old_format(out) -> None:
    """Turn a run's checkpoint into one written before amp_dtype, --deterministic, labels and the CUDA RNG of the
    training GPU alone: state.json without `amp_dtype` and `labels`, its config without `deterministic` and
    `labels`, and `cuda_rng` the list of every visible GPU's state (empty on a CPU-only host)."""
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    del state["amp_dtype"], state["labels"], state["config"]["deterministic"], state["config"]["labels"]
    path.write_text(json.dumps(state))
    saved = torch.load(out / "checkpoint" / "optimizer.pt", weights_only=True)
    torch.save({**saved, "cuda_rng": []}, out / "checkpoint" / "optimizer.pt")


def test_a_checkpoint_of_the_previous_version_resumes(tiny_base, toy_csv, tmp_path, caplog, capsys):
    out = tmp_path / "old"
    args = train_args(tiny_base, toy_csv, out, "--epochs", "1")
    assert main([*args, "--stop-after-steps", "5"]) == 0
    _make_old_format(out)
    # That code had no deterministic kernels: the run had the option's default, and a resume may not change it.
    assert main([*args, "--deterministic", "--resume"]) == 2
    assert "changed: deterministic (not recorded, so its default False → True)" in capsys.readouterr().err
    with caplog.at_level(logging.WARNING):
        assert main([*args, "--resume"]) == 0
    assert "the checkpoint does not record its precision: resuming in float32" in caplog.text
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["amp_dtype"] == "float32" and state["config"]["deterministic"] is False
    assert state["labels"] == ["negative", "positive"] and state["config"]["labels"] is None
    assert state["step"] > 5 and state["stop_reason"] == "completed"


def test_an_option_missing_from_an_old_checkpoint_counts_as_its_default():
    current = TrainConfig(dataset="reviews.csv").to_dict()
    defaults = TrainConfig.defaults()
    assert set(defaults) == set(current) - {"dataset"}  # the one option without a default
    for name in defaults:
        assert _changed_options({k: v for k, v in current.items() if k != name}, current) == [], name
    changed = {**current, "lora_r": 8, "time_limit": 5.0}
    older = {k: v for k, v in current.items() if k not in ("lora_r", "time_limit")}
    assert "time_limit" in RESUME_FREE
    assert _changed_options(older, changed) == ["lora_r (not recorded, so its default 16 → 8)"]


def test_a_full_run_is_not_compared_on_lora_options():
    """A full run has no LoRA: options recorded for it (16/32/0.1 by an earlier version) are not a change."""
    current = TrainConfig(dataset="reviews.csv", method="full", lr=1e-4).to_dict()
    older = {**current, "lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.1}
    assert _changed_options(older, current) == []
    assert _changed_options({**older, "lr": 5e-5}, current) == ["lr (5e-05 → 0.0001)"]


def _checkpoint_state(tmp_path, **state) -> TrainConfig:
    """A --resume config whose output folder holds a checkpoint state.json with `state`."""
    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "state.json").write_text(json.dumps({"step": 3, "config": {}, **state}))
    return TrainConfig(dataset="reviews.csv", output=tmp_path, precision="auto", resume=True)


def _cpu_bf16(monkeypatch, native: bool) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


@pytest.mark.parametrize(
    ("machine", "capability", "emulates", "dtype"),
    [
        ("T4", (7, 5), True, torch.bfloat16),  # emulated bf16, as the old `auto` chose: not fp16 + a fresh scaler
        ("V100", (7, 0), True, torch.bfloat16),
        ("A100", (8, 0), True, torch.bfloat16),
        ("GPU without bf16 emulation", (6, 1), False, torch.float16),
        ("CPU with native bf16", None, True, torch.bfloat16),
        ("CPU without native bf16", None, False, None),
    ],
)
def test_an_unrecorded_precision_is_resolved_as_the_code_that_wrote_it_did(
    monkeypatch, tmp_path, caplog, machine, capability, emulates, dtype
):
    if capability:
        _fake_gpu(monkeypatch, capability)
        monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: emulates)
    else:
        _cpu_bf16(monkeypatch, native=emulates)
    device = CUDA if capability else CPU
    with caplog.at_level(logging.WARNING):
        assert _resumed_dtype(_checkpoint_state(tmp_path), device) == dtype, machine
    assert "the checkpoint does not record its precision" in caplog.text
    assert loss_scaler(device, dtype).is_enabled() == (dtype == torch.float16), machine


@pytest.mark.parametrize(
    ("machine", "emulated"), [("T4", True), ("A100", False), ("CPU without native bf16", True), ("CPU", False)]
)
def test_resuming_bf16_where_it_is_emulated_warns(monkeypatch, tmp_path, caplog, machine, emulated):
    """Emulated bf16 is slower than the run was, on a T4 as on a CPU without AVX512-BF16 or AMX."""
    if machine in ("T4", "A100"):
        _fake_gpu(monkeypatch, (7, 5) if emulated else (8, 0))
    else:
        _cpu_bf16(monkeypatch, native=not emulated)
    device = CUDA if machine in ("T4", "A100") else CPU
    with caplog.at_level(logging.INFO):
        assert _resumed_dtype(_checkpoint_state(tmp_path, amp_dtype="bfloat16"), device) == torch.bfloat16
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("emulates" in w for w in warnings) == emulated, machine
    assert "resuming in bfloat16, the precision this run started with" in caplog.text


def test_a_relative_base_model_recorded_by_an_older_version_is_the_same_option(tmp_path, monkeypatch):
    from review_sentiment.train.config import TrainConfig
    from review_sentiment.train.prepare import _changed_options

    (tmp_path / "models" / "tiny-bert").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    current = TrainConfig(output="out", dataset="imdb", base_model="models/tiny-bert").to_dict()
    assert current["base_model"] == str(tmp_path / "models" / "tiny-bert")  # recorded absolute now
    assert _changed_options({**current, "base_model": "models/tiny-bert"}, current) == []
    assert _changed_options({**current, "base_model": "models/other"}, current) != []
