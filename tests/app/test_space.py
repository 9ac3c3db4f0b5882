"""`sentiment space build|push`: the folder a Space runs, its hardware, and what push asks of the Hub (faked)."""

import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from review_sentiment.app.space import SPACE_GPU_RUNTIME, hardware_choices
from review_sentiment.app.ui import serve_in_background as serve
from review_sentiment.cli import main


class FakeHub:
    """Stands in for huggingface_hub.HfApi: records each call, fails the one named in `fail`."""

    calls: list[tuple[str, tuple, dict]]
    fail: str | None = None

    def _record(self, name: str, *args, **kwargs):
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
    assert "onnxruntime-gpu[cuda,cudnn]==1.26.0" in requirements and "nvidia-cublas-cu12~=12.0" in requirements
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
