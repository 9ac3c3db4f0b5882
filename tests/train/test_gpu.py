"""Training on a real GPU: skipped unless PyTorch sees CUDA (`pytest -m gpu tests/train` on a GPU machine)."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from review_sentiment.cli import main

from ..conftest import assert_same_weights, skip_without_gpu, train_args

pytestmark = pytest.mark.gpu


@pytest.fixture(autouse=True)
def cuda_visible():
    if not torch.cuda.is_available():
        skip_without_gpu("these tests need a CUDA GPU visible to PyTorch")


def _expected_auto_dtype() -> str:
    return "bfloat16" if torch.cuda.get_device_capability() >= (8, 0) else "float16"


def _sentiment(*args: str, hide_gpus: bool = False) -> subprocess.CompletedProcess:
    """`sentiment …` in a fresh process (optionally one that sees no GPU, like a CPU-only host)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **({"CUDA_VISIBLE_DEVICES": ""} if hide_gpus else {})}
    command = [sys.executable, "-m", "review_sentiment.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_a_cuda_run_with_auto_precision(tiny_base, toy_csv, tmp_path):
    out = tmp_path / "cuda"
    assert main(train_args(tiny_base, toy_csv, out, "--device", "cuda", "--precision", "auto", "--epochs", "1")) == 0
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["device"].startswith("cuda") and training["dtype"] == _expected_auto_dtype()
    assert training["merge_check_passed"] is True
    assert json.loads((out / "checkpoint" / "state.json").read_text())["amp_dtype"] == training["dtype"]
    losses = [json.loads(line).get("loss") for line in (out / "history.jsonl").read_text().splitlines()]
    assert all(math.isfinite(loss) for loss in losses if loss is not None)


def test_a_cuda_checkpoint_resumes_on_a_host_without_a_gpu(tiny_base, toy_csv, tmp_path):
    out = tmp_path / "moved"
    args = train_args(tiny_base, toy_csv, out, "--precision", "auto", "--epochs", "1")
    assert main([*args, "--device", "cuda", "--stop-after-steps", "7"]) == 0
    saved = json.loads((out / "checkpoint" / "state.json").read_text())["amp_dtype"]
    assert saved == _expected_auto_dtype()
    resumed = _sentiment(*args, "--device", "cpu", "--resume", hide_gpus=True)
    if saved == "float16":  # a T4 or V100: fp16 cannot continue on CPU, and says so in one line
        assert resumed.returncode == 2 and "which needs CUDA" in resumed.stderr
        return
    assert resumed.returncode == 0, resumed.stderr
    assert "CUDA RNG state is not restored on cpu" in resumed.stderr
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["device"] == "cpu" and training["dtype"] == saved and training["steps"] > 7


@pytest.mark.slow
def test_a_deterministic_cuda_resume_is_bit_exact(tiny_base, toy_csv, tmp_path):
    """Fresh processes, so that --deterministic sets up cuBLAS before anything else starts CUDA."""
    common = ("--device", "cuda", "--precision", "auto", "--epochs", "2", "--lora-dropout", "0.1", "--deterministic")
    full, split = tmp_path / "full", tmp_path / "split"
    for run in (
        _sentiment(*train_args(tiny_base, toy_csv, full, *common)),
        _sentiment(*train_args(tiny_base, toy_csv, split, *common, "--stop-after-steps", "13")),
        _sentiment(*train_args(tiny_base, toy_csv, split, *common, "--resume")),
    ):
        assert run.returncode == 0, run.stderr
    assert_same_weights(full / "adapter" / "adapter_model.safetensors", split / "adapter" / "adapter_model.safetensors")
