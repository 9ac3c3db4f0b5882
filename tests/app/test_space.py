"""`sentiment space build|push`: the folder a Space runs, its hardware, and what push asks of the Hub (faked)."""

import inspect
import json
import logging
import shutil
import sys
from enum import Enum
from importlib.metadata import version
from pathlib import Path

import pytest
from huggingface_hub import HfApi
from packaging.requirements import Requirement

from review_sentiment.app.space import PAID_SLEEP_TIME, SPACE_GPU_RUNTIME, hardware_choices
from review_sentiment.app.ui import serve_in_background as serve
from review_sentiment.cli import main


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records each call, fails the one named in `fail`.

    Each call is bound to the real HfApi method's signature first, so a misspelt argument fails here too.
    """

    calls: list[tuple[str, tuple, dict]]
    fail: str | None = None

    def _record(self, name: str, *args, **kwargs):
        inspect.signature(getattr(HfApi, name)).bind(self, *args, **kwargs)
        FakeHub.calls.append((name, args, kwargs))
        if name == FakeHub.fail:
            raise RuntimeError("402 Payment Required\nmore detail")

    def create_repo(self, *args, **kwargs):
        self._record("create_repo", *args, **kwargs)

    def request_space_hardware(self, *args, **kwargs):
        self._record("request_space_hardware", *args, **kwargs)

    def upload_folder(self, *args, **kwargs):
        self._record("upload_folder", *args, **kwargs)


@pytest.fixture
def hub(monkeypatch):
    FakeHub.calls, FakeHub.fail = [], None
    monkeypatch.setattr("huggingface_hub.HfApi", FakeHub)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: "hf_fake")
    return FakeHub


def _build(model: Path, output: Path, *extra: str) -> int:
    return main(["space", "build", "--model", str(model), "--output", str(output), *extra])


def test_gpu_space_gets_the_cuda12_runtime_and_asks_for_cuda(bag_of_words_model, tmp_path):
    space = tmp_path / "gpu"
    assert _build(bag_of_words_model, space, "--hardware", "t4-small") == 0
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert "onnxruntime-gpu[cuda,cudnn]==1.26.0" in requirements
    assert set(SPACE_GPU_RUNTIME) <= set(requirements)
    # Neither the CPU runtime (it would shadow the CUDA one) nor any CUDA 13 library.
    assert not [line for line in requirements if line.startswith("onnxruntime==") or "nvidia-cublas~=13" in line]
    assert "provider='cuda'" in (space / "app.py").read_text()
    readme = (space / "README.md").read_text()
    assert "suggested_hardware: t4-small" in readme and "Built for `t4-small`" in readme
    assert f"pip install gradio=={version('gradio')} -r requirements.txt" in readme and "python app.py" in readme


def test_cpu_space_keeps_the_tested_cpu_runtime(bag_of_words_model, tmp_path):
    space = tmp_path / "cpu"
    assert _build(bag_of_words_model, space) == 0
    requirements = (space / "requirements.txt").read_text().splitlines()
    assert f"onnxruntime=={version('onnxruntime')}" in requirements
    assert not [line for line in requirements if "onnxruntime-gpu" in line or line.startswith("nvidia-")]
    assert "provider='cpu'" in (space / "app.py").read_text()
    assert "CPU basic (free) suits int8 models" in (space / "README.md").read_text()


def test_unknown_and_zerogpu_hardware_are_refused_in_one_line(bag_of_words_model, tmp_path, capsys):
    for hardware, reason in (("zero-a10g", "ZeroGPU lends a GPU to PyTorch code only"), ("t4-smal", "not a Space")):
        assert _build(bag_of_words_model, tmp_path / hardware, "--hardware", hardware) == 2
        err = capsys.readouterr().err
        assert reason in err and "t4-small, " in err and "cpu-basic" in err and "zero-" not in err.split("choose")[1]
        assert err.strip().count("\n") == 0
        assert not (tmp_path / hardware).exists()
    assert "t4-small" in hardware_choices() and not [h for h in hardware_choices() if h.startswith("zero-")]


def test_push_requests_the_built_hardware_before_uploading(bag_of_words_model, tmp_path, hub, capsys):
    assert _build(bag_of_words_model, tmp_path / "gpu", "--hardware", "l4x1") == 0
    assert main(["space", "push", str(tmp_path / "gpu"), "--repo", "someone/sentiment", "--private"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "https://huggingface.co/spaces/someone/sentiment"
    assert [name for name, _, _ in hub.calls] == ["create_repo", "request_space_hardware", "upload_folder"]
    _, args, kwargs = hub.calls[0]
    assert args == ("someone/sentiment",) and kwargs["space_hardware"] == "l4x1" and kwargs["exist_ok"]
    assert kwargs["repo_type"] == "space" and kwargs["space_sdk"] == "gradio" and kwargs["private"]
    assert hub.calls[1][1] == ("someone/sentiment", "l4x1")  # an existing Space keeps its hardware otherwise
    assert hub.calls[2][2]["folder_path"] == str(tmp_path / "gpu")
    hub.calls.clear()
    assert _build(bag_of_words_model, tmp_path / "cpu") == 0
    assert main(["space", "push", str(tmp_path / "cpu"), "--repo", "someone/sentiment"]) == 0
    assert hub.calls[0][2]["space_hardware"] == "cpu-basic" and hub.calls[1][1][1] == "cpu-basic"


def test_push_failures_name_the_step_and_upload_nothing(bag_of_words_model, tmp_path, hub, capsys):
    assert _build(bag_of_words_model, tmp_path / "gpu", "--hardware", "t4-small") == 0
    hub.fail = "request_space_hardware"
    assert main(["space", "push", str(tmp_path / "gpu"), "--repo", "someone/sentiment"]) == 2
    err = capsys.readouterr().err
    assert "could not request t4-small for the Space someone/sentiment: RuntimeError: 402 Payment Required" in err
    assert "billing" in err and err.strip().count("\n") == 0
    assert "upload_folder" not in [name for name, _, _ in hub.calls]
    # A folder whose front matter was edited to ZeroGPU is refused before any Hub call.
    readme = tmp_path / "gpu" / "README.md"
    readme.write_text(readme.read_text().replace("suggested_hardware: t4-small", "suggested_hardware: zero-a10g"))
    hub.calls.clear()
    assert main(["space", "push", str(tmp_path / "gpu"), "--repo", "someone/sentiment"]) == 2
    assert "ZeroGPU" in capsys.readouterr().err and hub.calls == []


def test_gpu_runtime_pins_every_cuda_library_to_one_cuda12_set(bag_of_words_model, tmp_path):
    runtime = {Requirement(line).name: Requirement(line) for line in SPACE_GPU_RUNTIME}
    # The [cuda,cudnn] extras' libraries, and cuBLAS and nvJitLink, which cuDNN and cuFFT pull in unbounded.
    libraries = ("cublas", "cuda-nvrtc", "cuda-runtime", "cudnn", "cufft", "curand", "nvjitlink")
    assert {name for name in runtime if name.startswith("nvidia-")} == {f"nvidia-{n}-cu12" for n in libraries}
    pins = {}
    for name, requirement in runtime.items():
        (specifier,) = requirement.specifier
        assert specifier.operator == "==", requirement
        pins[name] = specifier.version
    assert pins["onnxruntime-gpu"] == "1.26.0" and pins["nvidia-cudnn-cu12"].startswith("9.")
    assert all(
        pins[f"nvidia-{n}-cu12"].startswith("12.") for n in ("cublas", "cuda-nvrtc", "cuda-runtime", "nvjitlink")
    )
    assert _build(bag_of_words_model, tmp_path / "gpu", "--hardware", "t4-small") == 0
    requirements = (tmp_path / "gpu" / "requirements.txt").read_text().splitlines()
    assert sorted(line for line in requirements if line.startswith("nvidia-")) == sorted(
        line for line in SPACE_GPU_RUNTIME if line.startswith("nvidia-")
    )


def test_only_cpu_and_nvidia_gpu_hardware_is_accepted(bag_of_words_model, tmp_path, hub, capsys, monkeypatch):
    # A huggingface_hub whose SpaceHardware lists TPUs and hardware this module has never heard of.
    names = ("cpu-basic", "cpu-upgrade", "cpu-xl", "cpu-performance", "zero-a10g", "t4-small", "l4x1", "l40sx1")
    names += ("a10g-small", "a100x4", "h100", "h200x2", "v5e-1x1", "v5e-2x4", "rtx-pro-6000")
    hardware = Enum("SpaceHardware", [(name.upper().replace("-", "_"), name) for name in names], type=str)
    monkeypatch.setattr("huggingface_hub.SpaceHardware", hardware)
    choices = ("cpu-basic", "cpu-upgrade", "cpu-xl", "t4-small", "l4x1", "l40sx1", "a10g-small", "a100x4", "h100")
    assert hardware_choices() == (*choices, "h200x2")
    other = "neither CPU nor an NVIDIA GPU"
    refused = {"v5e-1x1": other, "rtx-pro-6000": other, "cpu-performance": other, "zero-a10g": "ZeroGPU lends"}
    refused["h200x4"] = f"not a Space hardware name that the installed huggingface_hub {version('huggingface_hub')}"
    for name, reason in refused.items():
        assert _build(bag_of_words_model, tmp_path / name, "--hardware", name) == 2
        err = capsys.readouterr().err
        assert reason in err and err.strip().count("\n") == 0 and not (tmp_path / name).exists()
        assert err.strip().endswith(f"choose one of {', '.join(hardware_choices())}")
    for name, provider in (("h200x2", "cuda"), ("a100x4", "cuda"), ("cpu-upgrade", "cpu")):
        assert _build(bag_of_words_model, tmp_path / name, "--hardware", name) == 0
        assert f"provider={provider!r}" in (tmp_path / name / "app.py").read_text()
    # A folder whose front matter was edited to a TPU is refused before any Hub call.
    readme = tmp_path / "h200x2" / "README.md"
    readme.write_text(readme.read_text().replace("suggested_hardware: h200x2", "suggested_hardware: v5e-2x4"))
    assert main(["space", "push", str(tmp_path / "h200x2"), "--repo", "someone/sentiment"]) == 2
    assert other in capsys.readouterr().err and hub.calls == []


def test_failed_upload_says_which_paid_hardware_it_leaves_requested(bag_of_words_model, tmp_path, hub, capsys):
    assert _build(bag_of_words_model, tmp_path / "gpu", "--hardware", "l4x1") == 0
    hub.fail = "upload_folder"
    assert main(["space", "push", str(tmp_path / "gpu"), "--repo", "someone/sentiment"]) == 2
    err = capsys.readouterr().err
    assert "could not push to the Space someone/sentiment: RuntimeError: 402 Payment Required" in err
    assert f"l4x1 is now requested for the Space and billed while it runs (it sleeps after {PAID_SLEEP_TIME} s" in err
    assert "pause the Space or request cpu-basic on https://huggingface.co/spaces/someone/sentiment/settings" in err
    assert err.strip().count("\n") == 0
    assert [name for name, _, _ in hub.calls] == ["create_repo", "request_space_hardware", "upload_folder"]
    assert main(["space", "push", str(tmp_path / "gpu"), "--repo", "someone/sentiment", "--sleep-time", "-1"]) == 2
    assert "billed while it runs (it never sleeps)" in capsys.readouterr().err
    # cpu-basic is free: nothing to undo, nothing said.
    assert _build(bag_of_words_model, tmp_path / "cpu") == 0
    assert main(["space", "push", str(tmp_path / "cpu"), "--repo", "someone/sentiment"]) == 2
    assert "now requested" not in capsys.readouterr().err


def test_push_puts_idle_paid_hardware_to_sleep(bag_of_words_model, tmp_path, hub, capsys):
    def sleep_times(folder: str, *extra: str) -> tuple:
        hub.calls.clear()
        assert main(["space", "push", str(tmp_path / folder), "--repo", "someone/sentiment", *extra]) == 0
        (_, _, create), (_, _, request) = hub.calls[:2]
        return create["space_sleep_time"], request["sleep_time"]

    for folder, hardware in (("gpu", "t4-small"), ("cpu-upgrade", "cpu-upgrade"), ("cpu", "cpu-basic")):
        assert _build(bag_of_words_model, tmp_path / folder, "--hardware", hardware) == 0
    assert sleep_times("gpu") == (PAID_SLEEP_TIME, PAID_SLEEP_TIME) == (3600, 3600)
    assert sleep_times("gpu", "--sleep-time", "900") == (900, 900)
    assert sleep_times("gpu", "--sleep-time", "-1") == (-1, -1)
    assert sleep_times("cpu-upgrade") == (3600, 3600)
    assert sleep_times("cpu") == (None, None)  # the Hub fixes cpu-basic's at 48 h
    for folder, value, message in (("cpu", "600", "sleeps after 48 hours"), ("gpu", "0", "above 0 (or -1")):
        hub.calls.clear()
        assert main(["space", "push", str(tmp_path / folder), "--repo", "x/y", "--sleep-time", value]) == 2
        assert message in capsys.readouterr().err and hub.calls == []


def test_fp16_model_on_cpu_hardware_warns(bag_of_words_model, tmp_path, caplog):
    fp16 = tmp_path / "fp16"
    shutil.copytree(bag_of_words_model, fp16)
    manifest = json.loads((fp16 / "manifest.json").read_text())
    (fp16 / "manifest.json").write_text(json.dumps({**manifest, "quantization": "fp16"}))
    caplog.set_level(logging.WARNING, logger="review_sentiment")
    for hardware in ("cpu-basic", "cpu-upgrade"):
        caplog.clear()
        assert _build(fp16, tmp_path / hardware, "--hardware", hardware) == 0
        (record,) = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "fp16 export, which ONNX Runtime runs slowly on CPU" in record.getMessage()
        assert "--hardware t4-small" in record.getMessage() and "--quantize int8" in record.getMessage()
    caplog.clear()
    assert _build(fp16, tmp_path / "gpu", "--hardware", "t4-small") == 0
    assert _build(bag_of_words_model, tmp_path / "fp32-cpu") == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_built_space_runs_as_its_own_process(exported, tmp_path):
    from gradio_client import Client

    space = tmp_path / "space"
    assert main(["space", "build", "--model", str(exported["int8"]), "--output", str(space)]) == 0
    readme = (space / "README.md").read_text()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme and "suggested_hardware: cpu-basic" in readme
    assert "torch" not in (space / "requirements.txt").read_text()
    assert "provider='cpu'" in (space / "app.py").read_text()
    # Run it the way Spaces does, from its own folder, with the project's package out of the way.
    env = {"PYTHONPATH": str(space), "PYTHONSAFEPATH": "1"}
    process, url = serve([sys.executable, "app.py"], cwd=space, env=env)
    try:
        label, _, _ = Client(url, verbose=False).predict("great wonderful loved", api_name="/analyze")
        assert label["label"] == "positive"
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_space_refusals(exported, tmp_path, capsys, monkeypatch):
    assert _build(exported["int8"], tmp_path / "s", "--hardware", "t4-small") == 2
    assert "int8 model runs on CPU only" in capsys.readouterr().err
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert _build(exported["int8"], tmp_path / "ok") == 0
    assert main(["space", "push", str(tmp_path / "ok"), "--repo", "someone/sentiment"]) == 2
    assert "not logged in to the Hugging Face Hub" in capsys.readouterr().err
