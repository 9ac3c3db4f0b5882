"""`sentiment space build|push`: a folder ready to run as a Hugging Face Space, and its upload.

The Space serves on ONNX Runtime without torch. ZeroGPU hardware (zero-*) is for PyTorch Spaces only,
so an ONNX Runtime GPU Space runs on dedicated GPU hardware (t4-small and up), which `push` requests
through the Hub API: `suggested_hardware` in the front matter only suggests, it assigns nothing.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

from ..errors import UserError
from ..manifest import resolve_model_folder

PACKAGE_DIR = Path(__file__).parents[1]
# The stages the app never imports (PyTorch side); the core, batch/ and app/ go into the Space.
LEFT_OUT = ("train", "export", "__pycache__")
CPU_HARDWARE = ("cpu-basic", "cpu-upgrade", "cpu-xl")
DISTRIBUTION = "review-sentiment"
# The ONNX Runtime of a GPU Space. Hugging Face does not publish the NVIDIA driver of its Spaces GPUs;
# a CUDA 12 build runs on any driver from 525 on (CUDA minor-version compatibility), while the CUDA 13
# builds that PyPI has from onnxruntime-gpu 1.27 on need driver 580 or newer. So a Space gets 1.26.0,
# the last CUDA 12 build on PyPI, with its CUDA 12 and cuDNN 9 libraries from pip: the [cuda,cudnn]
# extras bring cudart, cuFFT, cuRAND, NVRTC and cuDNN; cuBLAS/cuBLASLt is named here, as the extras
# leave it to cuDNN's own dependency.
SPACE_GPU_RUNTIME = ("onnxruntime-gpu[cuda,cudnn]==1.26.0", "nvidia-cublas-cu12~=12.0")


def hardware_choices() -> tuple[str, ...]:
    """The Space hardware names the installed huggingface_hub knows, less ZeroGPU (zero-*)."""
    from huggingface_hub import SpaceHardware

    return tuple(h.value for h in SpaceHardware if not h.value.startswith("zero-"))


def check_hardware(hardware: str) -> bool:
    """True for GPU hardware, False for CPU; a clear one-line error for zero-* and unknown names."""
    choices = hardware_choices()
    if hardware.startswith("zero-"):
        raise UserError(
            f"--hardware {hardware}: ZeroGPU lends a GPU to PyTorch code only, not to ONNX Runtime; "
            f"choose one of {', '.join(choices)}"
        )
    if hardware not in choices:
        raise UserError(f"--hardware {hardware}: not a Space hardware name; choose one of {', '.join(choices)}")
    return hardware not in CPU_HARDWARE


def _requirements(gpu: bool) -> str:
    """The package's base requirements and its [app] and [cpu] extras, pinned to what is installed.

    The same as a local `pip install 'review-sentiment[app,cpu]'`, so a CPU Space runs what was tested.
    A GPU Space gets SPACE_GPU_RUNTIME instead of the [cpu] extra (see there why not the [gpu] extra).
    """
    wanted = {"app"} if gpu else {"app", "cpu"}
    lines = list(SPACE_GPU_RUNTIME) if gpu else []
    for text in requires(DISTRIBUTION) or []:
        requirement = Requirement(text)
        extra = next((e for e in wanted if requirement.marker and requirement.marker.evaluate(_space_env(e))), None)
        if requirement.marker and extra is None and not requirement.marker.evaluate(_space_env("")):
            continue
        if requirement.name == "gradio":
            continue  # the Space's SDK installs gradio itself (sdk_version in the front matter)
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned = version(requirement.name) if _installed(requirement.name) else None
        lines.append(
            f"{requirement.name}{extras}=={pinned}" if pinned else f"{requirement.name}{extras}{requirement.specifier}"
        )
    return "\n".join(sorted(set(lines))) + "\n"


def _space_env(extra: str) -> dict:
    """Markers as a Space evaluates them (Linux x86_64), whatever machine builds the folder."""
    return {"extra": extra, "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def _installed(name: str) -> bool:
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def _front_matter(title: str, emoji: str, hardware: str, model_repo: str | None) -> list[str]:
    front = [
        "---",
        f"title: {title}",
        f"emoji: {emoji}",
        "colorFrom: indigo",
        "colorTo: green",
        "sdk: gradio",
        f"sdk_version: {version('gradio')}",
        "app_file: app.py",
        "python_version: '3.11'",
        "license: mit",
        "short_description: Movie review sentiment with word-level explanations (ONNX)",
        # Only a suggestion, for those who duplicate the Space; `sentiment space push` requests it.
        f"suggested_hardware: {hardware}",
    ]
    if model_repo:
        front += [f"models: [{model_repo}]", f"preload_from_hub: [{model_repo}]"]
    return [*front, "---", ""]


def _readme(title: str, emoji: str, hardware: str, model_repo: str | None, manifest: dict) -> str:
    metrics = manifest.get("validation_metrics", {})
    accuracy = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "n/a"
    precision = manifest["quantization"] if manifest["quantization"] != "none" else "fp32"
    gpu = hardware not in CPU_HARDWARE
    runtime = (
        f"ONNX Runtime's CUDA provider ({SPACE_GPU_RUNTIME[0]}, a CUDA 12 build); the app stops rather than "
        "fall back to CPU"
        if gpu
        else "ONNX Runtime on CPU"
    )
    local_gpu = " It needs an NVIDIA GPU with driver 525 or newer." if gpu else ""
    return "\n".join(_front_matter(title, emoji, hardware, model_repo)) + (
        f"""
# {title}

Sentiment of movie reviews with {manifest["base_model"]} + LoRA, served on ONNX Runtime
({precision}); validation accuracy {accuracy}
({manifest.get("data", {}).get("split", "")}). Paste a review to see which words pushed the prediction, or
score a whole CSV in the Batch tab.

## Hardware

Built for `{hardware}`: {runtime}. `sentiment space push` requests this hardware for the Space.
CPU basic (free) suits int8 models, which ONNX Runtime runs on CPU only. fp16 and fp32 models are for
GPU hardware (t4-small and up) with the CUDA provider. ZeroGPU (zero-*) serves PyTorch Spaces only, not
ONNX Runtime.

## Run it locally

```
pip install gradio=={version("gradio")} -r requirements.txt
python app.py
```

Then open http://127.0.0.1:7860.{local_gpu}
"""
    )


def build_space(
    model: str | None,
    output: Path,
    model_repo: str | None = None,
    hardware: str = "cpu-basic",
    title: str = "Movie Review Sentiment",
    emoji: str = "🎬",
    overwrite: bool = False,
) -> Path:
    """Write app.py, requirements.txt, README.md (Spaces front matter), the package and the model.

    The folder is written beside `output` and moved into place at the end: a failure leaves nothing behind.
    """
    gpu = check_hardware(hardware)
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UserError(f"output folder {output} already exists; pass --overwrite to replace it")
    source = resolve_model_folder(model_repo or model)
    manifest = json.loads((source / "manifest.json").read_text())
    if gpu and manifest["quantization"] == "int8":
        raise UserError(
            "an int8 model runs on CPU only in ONNX Runtime: use --hardware cpu-basic or export fp32/fp16 for GPU"
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        _write_space(staging, source, manifest, model_repo, hardware, gpu, title, emoji)
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output


def _write_space(
    folder: Path, source: Path, manifest: dict, model_repo: str | None, hardware: str, gpu: bool, title: str, emoji: str
) -> None:
    shutil.copytree(PACKAGE_DIR, folder / "review_sentiment", ignore=shutil.ignore_patterns(*LEFT_OUT, "default_model"))
    if model_repo:
        model_ref = repr(model_repo)
    else:
        shutil.copytree(source, folder / "model", ignore=shutil.ignore_patterns("__pycache__"))
        model_ref = 'str(Path(__file__).parent / "model")'
    # On GPU hardware ask for CUDA outright: `auto` would fall back to CPU quietly and serve slowly.
    provider = "cuda" if gpu else "cpu"
    (folder / "app.py").write_text(f'''"""Hugging Face Space entry point, written by `sentiment space build`."""

from pathlib import Path

from review_sentiment.app.ui import build_demo, launch
from review_sentiment.log import setup_logging
from review_sentiment.scorer import Scorer

setup_logging()
demo = build_demo(Scorer.load({model_ref}, provider={provider!r}))

if __name__ == "__main__":
    launch(demo)
''')
    (folder / "requirements.txt").write_text(_requirements(gpu))
    (folder / "README.md").write_text(_readme(title, emoji, hardware, model_repo, manifest))


def built_hardware(folder: Path) -> str:
    """The hardware a built Space folder was made for: `suggested_hardware` in its README front matter."""
    lines = (Path(folder) / "README.md").read_text().splitlines()
    end = lines.index("---", 1) if lines[:1] == ["---"] and "---" in lines[1:] else 0
    for line in lines[1:end]:
        key, _, value = line.partition(":")
        if key.strip() == "suggested_hardware":
            return value.strip()
    return "cpu-basic"  # the Hub's default when the front matter names none


def push_space(folder: Path, repo: str, private: bool = False) -> str:
    """Create (or reuse) the Space `repo`, give it the hardware it was built for, and upload `folder`.

    The hardware is requested before the upload: a GPU build never starts on CPU hardware, where its
    CUDA provider would fail. A create_repo that finds the Space already there leaves its hardware as it
    is, hence the explicit request too.
    """
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        raise UserError(f"{folder} is not a Space folder (no app.py/README.md); make one with `sentiment space build`")
    hardware = built_hardware(folder)
    check_hardware(hardware)
    if not get_token():
        raise UserError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")
    api = HfApi()
    billing = "offline, a token without write access, or paid hardware without billing set up?"
    _on_hub(
        f"create the Space {repo}",
        lambda: api.create_repo(
            repo, repo_type="space", space_sdk="gradio", space_hardware=hardware, private=private, exist_ok=True
        ),
        billing,
    )
    _on_hub(f"request {hardware} for the Space {repo}", lambda: api.request_space_hardware(repo, hardware), billing)
    _on_hub(
        f"push to the Space {repo}",
        lambda: api.upload_folder(
            folder_path=str(folder), repo_id=repo, repo_type="space", commit_message="Deploy with sentiment space push"
        ),
        "offline, or the token lacks write access?",
    )
    return f"https://huggingface.co/spaces/{repo}"


def _on_hub(what: str, call: Callable[[], object], causes: str) -> None:
    """Run one Hub call; a failure becomes one line: the step that failed, the error, the likely causes."""
    try:
        call()
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"could not {what}: {type(error).__name__}: {first} ({causes})") from error
