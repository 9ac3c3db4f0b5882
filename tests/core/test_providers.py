"""Provider selection, with the providers onnxruntime offers faked: no GPU needed to check the logic."""

import onnxruntime as ort
import pytest

from review_sentiment import providers as ort_providers
from review_sentiment.errors import UserError

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


@pytest.fixture
def offered(monkeypatch):
    """Set what this onnxruntime build offers and whether a GPU seems present."""

    def fake(names, gpu):
        monkeypatch.setattr(ort, "get_available_providers", lambda: list(names))
        monkeypatch.setattr(ort_providers, "may_have_nvidia_gpu", lambda: gpu)

    return fake


@pytest.mark.parametrize(
    ("providers", "gpu", "asked", "quantization", "expected"),
    [
        ([CUDA, CPU], True, "auto", "none", [CUDA, CPU]),
        ([CUDA, CPU], False, "auto", "none", [CPU]),  # onnxruntime-gpu lists CUDA on any machine
        ([CUDA, CPU], True, "auto", "int8", [CPU]),  # int8 kernels run on CPU
        ([CPU], True, "auto", "none", [CPU]),
        ([TRT, CUDA, CPU], True, "tensorrt", "fp16", [TRT, CUDA, CPU]),
        ([TRT, CUDA, CPU], True, "cuda", "none", [CUDA, CPU]),
        ([CUDA, CPU], True, "cpu", "none", [CPU]),
    ],
)
def test_provider_chains(offered, providers, gpu, asked, quantization, expected):
    offered(providers, gpu)
    assert ort_providers._wanted_providers(asked, quantization) == expected


def test_cuda_is_refused_where_the_build_lacks_it(offered):
    offered([CPU], True)
    with pytest.raises(UserError, match="this onnxruntime build has no CUDAExecutionProvider"):
        ort_providers._wanted_providers("cuda", "none")


def test_a_cuda_session_that_fell_back_to_cpu_is_an_error(offered, monkeypatch, bag_of_words_model, caplog):
    offered([CUDA, CPU], True)

    class FellBack:  # what onnxruntime does when the CUDA libraries are missing: a CPU session
        def __init__(self, *args, providers, **kwargs):
            self.asked = providers

        def get_providers(self):
            return [CPU]

    monkeypatch.setattr(ort, "InferenceSession", FellBack)
    monkeypatch.setattr(ort, "preload_dlls", lambda: None, raising=False)
    with pytest.raises(UserError, match="asked for CUDAExecutionProvider but the session got CPUExecutionProvider"):
        ort_providers.create_session(bag_of_words_model / "model.onnx", "cuda")
    session = ort_providers.create_session(bag_of_words_model / "model.onnx", "auto")
    assert session.asked == [CUDA, CPU] and "could not be used here; running on CPU" in caplog.text


@pytest.mark.parametrize(
    ("present", "expected"),
    [((), False), (("proc/driver/nvidia/gpus/0000:01:00.0",), True), (("dev/dxg",), True), (("dev/nvidia0",), True)],
)
def test_gpu_presence_on_linux_wsl_and_containers(tmp_path, monkeypatch, present, expected):
    monkeypatch.setattr(ort_providers.sys, "platform", "linux")
    for path in present:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).mkdir() if path.startswith("proc") else (tmp_path / path).touch()
    assert ort_providers.may_have_nvidia_gpu(tmp_path) is expected


def test_a_gpu_space_asks_for_cuda_and_ships_the_cuda_libraries(exported, tmp_path):
    from review_sentiment.app.space import build_space

    space = build_space(str(exported["none"]), tmp_path / "gpu-space", hardware="t4-small")
    assert "provider='cuda'" in (space / "app.py").read_text()
    assert "onnxruntime-gpu[cuda,cudnn]==" in (space / "requirements.txt").read_text()
