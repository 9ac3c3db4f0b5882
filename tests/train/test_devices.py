"""CUDA training on a CPU-only machine: precision choice, cross-device resume and the merge check, with
torch.cuda faked where a test needs a GPU and checkpoints written as a CUDA run writes them."""

import json
import logging
import os
from types import SimpleNamespace

import pytest
import torch
import torch.serialization

from review_sentiment.cli import main
from review_sentiment.train import finish as finish_module
from review_sentiment.train import loop
from review_sentiment.train.checkpoint import load_checkpoint, save_checkpoint
from review_sentiment.train.finish import _merge_checked
from review_sentiment.train.modeling import add_lora, load_classifier, load_tokenizer
from review_sentiment.train.prepare import autocast_dtype, deterministic_kernels, loss_scaler

from ..conftest import train_args

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _fake_gpu(monkeypatch, capability: tuple[int, int]) -> None:
    """torch.cuda as on a machine with one GPU of this compute capability, whose bf16 emulation works."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(major=capability[0]))
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True)
    monkeypatch.setattr(torch.version, "hip", None)


@pytest.mark.parametrize(
    ("gpu", "capability", "dtype"),
    [("T4", (7, 5), torch.float16), ("V100", (7, 0), torch.float16), ("A100", (8, 0), torch.bfloat16)],
)
def test_auto_precision_uses_bf16_only_where_the_gpu_has_it(monkeypatch, gpu, capability, dtype):
    """Emulated bf16 on a T4 or V100 is far slower than fp16 with loss scaling: auto must not pick it."""
    _fake_gpu(monkeypatch, capability)
    chosen = autocast_dtype(CUDA, "auto")
    assert chosen == dtype, gpu
    assert loss_scaler(CUDA, chosen).is_enabled() == (dtype == torch.float16), gpu


def _tiny_training_objects(scaler_enabled: bool = False):
    """A model, AdamW with state after one step, a schedule and a CPU loss scaler."""
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    return model, optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=scaler_enabled)


def _save_as_on_cuda(monkeypatch, folder, objects, device=CUDA) -> None:
    """Save as a run on `device` does: every tensor in optimizer.pt stored as a CUDA tensor, plus the
    generator state of that GPU (asking for the state of every GPU is an error, as where fewer are visible)."""
    cuda_rng = torch.full((16,), 7, dtype=torch.uint8)
    model, optimizer, scheduler, scaler = objects
    with monkeypatch.context() as patch:
        registry = [(0, lambda storage: "cuda:0", lambda obj, location: None), *torch.serialization._package_registry]
        patch.setattr(torch.serialization, "_package_registry", registry)
        patch.setattr(torch.cuda, "get_rng_state", lambda device="cuda": cuda_rng.clone())
        patch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("saved the state of every GPU"))
        save_checkpoint(folder, model, None, optimizer, scheduler, scaler, {"step": 3}, device)


def test_a_cuda_checkpoint_resumes_on_a_cpu_only_host(monkeypatch, tmp_path, caplog):
    folder = tmp_path / "checkpoint"
    saved = _tiny_training_objects()
    _save_as_on_cuda(monkeypatch, folder, saved)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really holds CUDA tensors
        torch.load(folder / "optimizer.pt", weights_only=True)
    model, optimizer, scheduler, scaler = _tiny_training_objects()
    torch.nn.init.zeros_(model.weight)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a, **k: pytest.fail("restored CUDA RNG on CPU"))
    with caplog.at_level(logging.WARNING):
        state, best = load_checkpoint(folder, model, optimizer, scheduler, scaler, CPU)
    assert state["step"] == 3 and best is None
    assert torch.equal(model.weight, saved[0].weight)
    exp_avg = optimizer.state[optimizer.param_groups[0]["params"][0]]["exp_avg"]
    assert exp_avg.device == CPU and torch.equal(exp_avg, saved[1].state[saved[0].weight]["exp_avg"])
    assert "CUDA RNG state is not restored on cpu" in caplog.text


@pytest.mark.parametrize("old_format", [False, True])
def test_only_the_training_gpus_rng_is_restored(monkeypatch, tmp_path, old_format):
    """A run on cuda:1 of a two-GPU box resumes where one GPU is visible: its generator goes to that GPU."""
    folder = tmp_path / "checkpoint"
    _save_as_on_cuda(monkeypatch, folder, _tiny_training_objects(), device=torch.device("cuda:1"))
    if old_format:  # checkpoints before this fix held a list with one state per visible GPU
        saved = torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu")
        saved["cuda_rng"] = [saved["cuda_rng"], torch.zeros(16, dtype=torch.uint8)]
        torch.save(saved, folder / "optimizer.pt")
    restored = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append((state, device)))
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: pytest.fail("invalid device ordinal"))
    load_checkpoint(folder, *_tiny_training_objects(), CUDA)
    assert len(restored) == 1 and torch.equal(restored[0][0], torch.full((16,), 7, dtype=torch.uint8))
    assert restored[0][1] == CUDA


def test_a_loss_scaler_resumes_from_a_run_that_had_none(monkeypatch, tmp_path, caplog):
    """A disabled scaler saves {}; an enabled one must neither fail on it nor lose a real state."""
    without, with_scale = tmp_path / "bf16", tmp_path / "fp16"
    _save_as_on_cuda(monkeypatch, without, _tiny_training_objects(scaler_enabled=False))
    objects = (*_tiny_training_objects()[:3], torch.amp.GradScaler("cpu", init_scale=1024.0))
    _save_as_on_cuda(monkeypatch, with_scale, objects)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda *a, **k: None)
    fresh = _tiny_training_objects(scaler_enabled=True)
    with caplog.at_level(logging.WARNING):
        load_checkpoint(without, *fresh, CUDA)
    assert fresh[3].get_scale() == 2.0**16 and "loss scaling starts afresh" in caplog.text
    load_checkpoint(with_scale, *fresh, CUDA)
    assert fresh[3].get_scale() == 1024.0


def _stopped_run(tiny_base, toy_csv, out, *extra: str) -> list[str]:
    """Options of a 1-epoch --precision auto run, which is stopped after 5 steps; returns its options."""
    args = train_args(tiny_base, toy_csv, out, "--epochs", "1", "--precision", "auto", *extra)
    assert main([*args, "--stop-after-steps", "5"]) == 0
    return args


def _set_saved_dtype(out, dtype: str) -> None:
    """Make the checkpoint one whose run started in `dtype` (as --precision auto resolves on a GPU)."""
    path = out / "checkpoint" / "state.json"
    state = json.loads(path.read_text())
    assert state["amp_dtype"] == "float32"  # what auto resolved to on this (faked bf16-less) CPU
    path.write_text(json.dumps({**state, "amp_dtype": dtype}))


@pytest.fixture
def cpu_without_bf16(monkeypatch):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


def test_resume_keeps_the_precision_the_run_started_with(tiny_base, toy_csv, tmp_path, caplog, cpu_without_bf16):
    """A run started in bf16 on an A100 continues in bf16 on a CPU where auto would pick fp32."""
    out = tmp_path / "moved"
    args = _stopped_run(tiny_base, toy_csv, out)
    _set_saved_dtype(out, "bfloat16")
    with caplog.at_level(logging.INFO):
        assert main([*args, "--resume"]) == 0
    assert "resuming in bfloat16, the precision this run started with" in caplog.text
    assert json.loads((out / "metrics.json").read_text())["training"]["dtype"] == "bfloat16"
    assert json.loads((out / "checkpoint" / "state.json").read_text())["amp_dtype"] == "bfloat16"


def test_a_float16_run_cannot_resume_on_cpu(tiny_base, toy_csv, tmp_path, capsys, cpu_without_bf16):
    out = tmp_path / "t4"
    args = _stopped_run(tiny_base, toy_csv, out)
    _set_saved_dtype(out, "float16")
    assert main([*args, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "this run trained in float16 (with loss scaling), which needs CUDA" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_deterministic_kernels_are_on_during_the_run_only(tiny_base, toy_csv, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    seen = []
    real_setup = loop.setup

    def recording_setup(cfg):  # `setup` is where CUDA would start: the settings must be in place by then
        seen.append((torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark))
        seen.append(os.environ["CUBLAS_WORKSPACE_CONFIG"])
        return real_setup(cfg)

    monkeypatch.setattr(loop, "setup", recording_setup)
    out = tmp_path / "deterministic"
    assert main(train_args(tiny_base, toy_csv, out, "--epochs", "1", "--deterministic")) == 0
    assert seen == [(True, False), ":4096:8"]
    assert not torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.benchmark
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ""
    # Deterministic kernels can give other numbers than the default ones: a resume must keep the choice.
    assert json.loads((out / "checkpoint" / "state.json").read_text())["config"]["deterministic"] is True
    assert main(train_args(tiny_base, toy_csv, out, "--epochs", "1", "--resume")) == 2
    assert "changed: deterministic (True → False)" in capsys.readouterr().err


@pytest.mark.parametrize("before", [None, "", ":0:0", ":16:8"])
def test_deterministic_kernels_put_back_the_cublas_workspace_setting(monkeypatch, before):
    """Unset stays unset, and a value of the caller's comes back, also when the run fails."""
    if before is None:
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    else:
        monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", before)
    with pytest.raises(RuntimeError, match="the run failed"), deterministic_kernels(True):
        assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == (before if before == ":16:8" else ":4096:8")
        raise RuntimeError("the run failed")
    assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == before
    assert not torch.are_deterministic_algorithms_enabled()


def test_the_deterministic_help_says_a_resume_needs_it_again_and_what_it_costs(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = "".join(capsys.readouterr().out.split())  # whatever argparse's line wrapping
    for claim in ("give it to the first run and again to every --resume", "Slower on CUDA", "no effect on CPU"):
        assert "".join(claim.split()) in text, claim


def _tiny_lora_run(tiny_base, device: torch.device) -> SimpleNamespace:
    """What `_merge_checked` reads from a Run: a LoRA model with trained-looking (non-zero) B weights."""
    torch.manual_seed(0)
    model = add_lora(load_classifier(str(tiny_base)), 4, 8, 0.0, None)
    for name, weight in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(weight, std=0.5)
    encoder = load_tokenizer(str(tiny_base))
    ids = [encoder(text)["input_ids"] for text in ("great film", "the plot was awful and boring", "dull")]
    return SimpleNamespace(model=model.eval(), val_ids=ids, encoder=SimpleNamespace(pad_id=0), device=device)


def test_the_merge_is_checked_on_cpu_in_fp32_whatever_the_training_device(tiny_base, monkeypatch):
    """A run on CUDA with bf16 weights: the check must run neither on the GPU (cuBLAS may choose another
    algorithm for the merged weights, and the gap would measure that; here a CUDA tensor cannot even be made)
    nor in bf16, whose rounding of W + B·A alone is far more than the 1e-4 the check allows."""
    run = _tiny_lora_run(tiny_base, CUDA)
    run.model.to(torch.bfloat16)
    compared = []
    real_merge = finish_module.merge

    def recording_merge(model):  # the model whose logits are compared with the merged one's
        compared.append({(p.device, p.dtype) for p in model.parameters()})
        return real_merge(model)

    monkeypatch.setattr(finish_module, "merge", recording_merge)
    merged, gap = _merge_checked(run)
    assert compared == [{(CPU, torch.float32)}]
    parameters = list(merged.parameters())
    assert {p.device for p in parameters} == {CPU} and {p.dtype for p in parameters} == {torch.float32}
    assert 0 <= gap <= 1e-4


def test_a_failed_merge_check_keeps_every_output_and_says_so(tiny_base, toy_csv, tmp_path, monkeypatch, capsys):
    real_merge = finish_module.merge

    def broken_merge(model):
        merged = real_merge(model)
        with torch.no_grad():
            merged.classifier.bias += 0.01
        return merged

    monkeypatch.setattr(finish_module, "merge", broken_merge)
    out = tmp_path / "bad-merge"
    assert main(train_args(tiny_base, toy_csv, out, "--epochs", "1")) == 2
    assert "merged/ does not match adapter/: their logits differ by 1.00e-02" in capsys.readouterr().err
    assert (out / "merged" / "model.safetensors").is_file() and (
        out / "adapter" / "adapter_model.safetensors"
    ).is_file()
    training = json.loads((out / "metrics.json").read_text())["training"]
    assert training["merge_check_passed"] is False and training["merge_max_abs_logit_diff"] > 1e-4
    assert "merged/ does not match adapter/" in (out / "merged" / "README.md").read_text()


def test_a_finished_run_records_its_precision_and_a_passed_merge_check(trained_run):
    training = json.loads((trained_run / "metrics.json").read_text())["training"]
    assert training["dtype"] == "float32" and training["merge_check_passed"] is True
    assert training["merge_max_abs_logit_diff"] <= 1e-4
    assert json.loads((trained_run / "checkpoint" / "state.json").read_text())["amp_dtype"] == "float32"
