"""`sentiment space build|push`: a folder ready to run as a Hugging Face Space, and its upload.

The Space serves on ONNX Runtime without torch. Note: ZeroGPU Spaces support PyTorch only, so an
ONNX Runtime GPU Space needs dedicated GPU hardware (t4-small and up) with onnxruntime-gpu.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

from ..errors import UserError
from ..manifest import resolve_model_folder

PACKAGE_DIR = Path(__file__).parents[1]
# The stages the app never imports (PyTorch side); the core, batch/ and app/ go into the Space.
LEFT_OUT = ("train", "export", "__pycache__")
CPU_HARDWARE = ("cpu-basic", "cpu-upgrade")
DISTRIBUTION = "review-sentiment"


def _requirements(gpu: bool) -> str:
    """The package's own base requirements plus its [app] and [cpu] or [gpu] extras, pinned to what is installed.

    The same extras as a local `pip install 'review-sentiment[app,cpu]'`, so the Space runs what was tested.
    A GPU Space needs the CUDA and cuDNN libraries from pip, which the [gpu] extra brings.
    """
    wanted = {"app", "gpu" if gpu else "cpu"}
    lines = []
    for text in requires(DISTRIBUTION) or []:
        requirement = Requirement(text)
        extra = next((e for e in wanted if requirement.marker and requirement.marker.evaluate(_space_env(e))), None)
        if requirement.marker and extra is None and not requirement.marker.evaluate(_space_env("")):
            continue
        if requirement.name == "gradio":
            continue  # the Space's SDK installs gradio itself (sdk_version in the front matter)
        extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
        pinned = _pinned_version(requirement.name)
        lines.append(
            f"{requirement.name}{extras}=={pinned}" if pinned else f"{requirement.name}{extras}{requirement.specifier}"
        )
    return "\n".join(sorted(set(lines))) + "\n"


def _space_env(extra: str) -> dict:
    """Markers as a Space evaluates them (Linux x86_64), whatever machine builds the folder."""
    return {"extra": extra, "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64"}


def _pinned_version(name: str) -> str | None:
    if _installed(name):
        return version(name)
    if name == "onnxruntime-gpu" and _installed("onnxruntime"):
        return version("onnxruntime")  # the same release numbers: a CPU machine pins the GPU build too
    return None


def _installed(name: str) -> bool:
    try:
        version(name)
        return True
    except PackageNotFoundError:
        return False


def _readme(title: str, emoji: str, hardware: str, model_repo: str | None, manifest: dict) -> str:
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
        f"suggested_hardware: {hardware}",
    ]
    if model_repo:
        front += [f"models: [{model_repo}]", f"preload_from_hub: [{model_repo}]"]
    metrics = manifest.get("validation_metrics", {})
    accuracy = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "n/a"
    return (
        "\n".join([*front, "---", ""])
        + f"""
# {title}

Sentiment of movie reviews with {manifest["base_model"]} + LoRA, served on ONNX Runtime
({manifest["quantization"] if manifest["quantization"] != "none" else "fp32"}); validation accuracy {accuracy}
({manifest.get("data", {}).get("split", "")}). Paste a review to see which words pushed the prediction, or
score a whole CSV in the Batch tab.

Hardware: int8 models are for CPU Spaces. For GPU, export fp32 or fp16 and choose dedicated GPU hardware
(t4-small and up): ZeroGPU supports PyTorch only, not ONNX Runtime.
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
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise UserError(f"output folder {output} already exists; pass --overwrite to replace it")
    source = resolve_model_folder(model_repo or model)
    manifest = json.loads((source / "manifest.json").read_text())
    gpu = hardware not in CPU_HARDWARE
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


def push_space(folder: Path, repo: str, private: bool = False) -> str:
    """Create (or reuse) the Space `repo` and upload `folder`; one clear line when that cannot work."""
    from huggingface_hub import HfApi, get_token

    folder = Path(folder)
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        raise UserError(f"{folder} is not a Space folder (no app.py/README.md); make one with `sentiment space build`")
    if not get_token():
        raise UserError("not logged in to the Hugging Face Hub: run `hf auth login` or set HF_TOKEN")
    api = HfApi()
    try:
        api.create_repo(repo, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
        api.upload_folder(
            folder_path=str(folder), repo_id=repo, repo_type="space", commit_message="Deploy with sentiment space push"
        )
    except Exception as error:
        raise UserError(
            f"could not push to the Space {repo}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''} (offline, or the token lacks write access?)"
        ) from error
    return f"https://huggingface.co/spaces/{repo}"
