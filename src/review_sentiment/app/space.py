"""`sentiment space build|push`: a folder ready to run as a Hugging Face Space, and its upload.

The Space serves on ONNX Runtime without torch. ZeroGPU hardware (zero-*) is for PyTorch Spaces only,
so an ONNX Runtime GPU Space runs on dedicated GPU hardware (t4-small and up), which `push` requests
through the Hub API: `suggested_hardware` in the front matter only suggests, it assigns nothing.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, requires, version
from pathlib import Path

from packaging.requirements import Requirement

from ..card import METHOD_NAMES, method_of, model_name, public_split
from ..errors import UserError
from ..hub import require_token
from ..manifest import resolve_model_folder

log = logging.getLogger(__name__)
PACKAGE_DIR = Path(__file__).parents[1]
# The stages the app never imports (PyTorch side); the core, batch/ and app/ go into the Space.
LEFT_OUT = ("train", "export", "__pycache__")
DISTRIBUTION = "review-sentiment"
# The hardware a Space is built for, named here rather than taken from huggingface_hub's SpaceHardware,
# which also lists ZeroGPU (PyTorch only) and, in some releases, TPUs (v5e-*): "not CPU" is not "CUDA".
CPU_HARDWARE = ("cpu-basic", "cpu-upgrade", "cpu-xl")
# NVIDIA GPUs by name prefix, Turing (T4) to Hopper (H100, H200): what the CUDA 12 build below serves.
# Blackwell (rtx-pro-*) is left out until a Space on it has run that build.
NVIDIA_GPU_PREFIXES = ("t4-", "l4x", "l40sx", "a10g-", "a100", "h100", "h200")
# Paid hardware bills while the Space runs and, unless told, never sleeps; push sets this sleep time
# (seconds without visitors) so an idle Space stops billing. cpu-basic sleeps after 48 h on its own.
PAID_SLEEP_TIME = 3600
# The ONNX Runtime of a GPU Space. Hugging Face does not publish the NVIDIA driver of its Spaces GPUs;
# a CUDA 12 build runs on any driver from 525 on (CUDA minor-version compatibility), while the CUDA 13
# builds that PyPI has from onnxruntime-gpu 1.27 on need driver 580 or newer. So a Space gets 1.26.0,
# the last CUDA 12 build on PyPI, with its CUDA 12 and cuDNN 9 libraries from pip. The [cuda,cudnn]
# extras ask only for `~=` ranges (cudart, cuFFT, cuRAND, NVRTC, cuDNN) and leave cuBLAS and nvJitLink
# unbounded to cuDNN's and cuFFT's own dependencies, so each rebuild of the Space could install another
# set. The versions below are what `pip install --dry-run --ignore-installed --report` resolved for
# "onnxruntime-gpu[cuda,cudnn]==1.26.0" plus cuBLAS, pinned exactly so every rebuild runs one tested
# set; the -cu12 names hold the CUDA 12 major whatever the pin.
SPACE_GPU_RUNTIME = (
    "onnxruntime-gpu[cuda,cudnn]==1.26.0",
    "nvidia-cublas-cu12==12.9.3.13",
    "nvidia-cuda-nvrtc-cu12==12.9.86",
    "nvidia-cuda-runtime-cu12==12.9.79",
    "nvidia-cudnn-cu12==9.28.0.42",
    "nvidia-cufft-cu12==11.4.1.4",
    "nvidia-curand-cu12==10.3.10.19",
    "nvidia-nvjitlink-cu12==12.9.86",
)


def _hub_hardware() -> tuple[str, ...]:
    """Every Space hardware name the installed huggingface_hub knows."""
    from huggingface_hub import SpaceHardware

    return tuple(h.value for h in SpaceHardware)


def hardware_choices() -> tuple[str, ...]:
    """The hardware a Space can be built for: CPU_HARDWARE and NVIDIA GPUs the installed hub knows."""
    return tuple(h for h in _hub_hardware() if h in CPU_HARDWARE or h.startswith(NVIDIA_GPU_PREFIXES))


def check_hardware(hardware: str) -> bool:
    """True for NVIDIA GPU hardware, False for CPU; one clear line for anything else (ZeroGPU, TPU, unknown)."""
    choices = hardware_choices()
    if hardware in choices:
        return hardware not in CPU_HARDWARE
    if hardware.startswith("zero-"):
        reason = "ZeroGPU lends a GPU to PyTorch code only, not to ONNX Runtime"
    elif hardware in _hub_hardware():
        reason = "neither CPU nor an NVIDIA GPU, the hardware a Space of ONNX Runtime (CPU or CUDA) runs on"
    else:
        reason = f"not a Space hardware name that the installed huggingface_hub {version('huggingface_hub')} knows"
    raise UserError(f"--hardware {hardware}: {reason}; choose one of {', '.join(choices)}")


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


def _readme(title: str, emoji: str, hardware: str, gpu: bool, model_repo: str | None, manifest: dict) -> str:
    metrics = manifest.get("validation_metrics", {})
    accuracy = f"{metrics['accuracy']:.2%}" if "accuracy" in metrics else "n/a"
    precision = manifest["quantization"] if manifest["quantization"] != "none" else "fp32"
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

Sentiment of movie reviews with {model_name(manifest["base_model"])} + {METHOD_NAMES[method_of(manifest)]}, served on ONNX Runtime
({precision}); validation accuracy {accuracy}
({public_split(manifest.get("data", {}).get("split", ""))}). Paste a review to see which words pushed the prediction, or
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
    if not gpu and manifest["quantization"] == "fp16":
        # ONNX Runtime's CPU kernels are fp32 and int8: an fp16 graph runs with casts around most ops.
        log.warning(
            "%s is an fp16 export, which ONNX Runtime runs slowly on CPU: build for GPU hardware "
            "(--hardware t4-small or another NVIDIA GPU) or, for %s, export the model again with --quantize int8",
            source,
            hardware,
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
    (folder / "README.md").write_text(_readme(title, emoji, hardware, gpu, model_repo, manifest))


def built_hardware(folder: Path) -> str:
    """The hardware a built Space folder was made for: `suggested_hardware` in its README front matter."""
    lines = (Path(folder) / "README.md").read_text().splitlines()
    end = lines.index("---", 1) if lines[:1] == ["---"] and "---" in lines[1:] else 0
    for line in lines[1:end]:
        key, _, value = line.partition(":")
        if key.strip() == "suggested_hardware":
            return value.strip()
    return "cpu-basic"  # the Hub's default when the front matter names none


def push_space(folder: Path, repo: str, private: bool = False, sleep_time: int | None = None) -> str:
    """Create (or reuse) the Space `repo`, give it the hardware it was built for, and upload `folder`.

    The hardware is requested before the upload: a GPU build never starts on CPU hardware, where its
    CUDA provider would fail. A create_repo that finds the Space already there leaves its hardware as it
    is, hence the explicit request too. Paid hardware gets a sleep time (`sleep_time` seconds without
    visitors, PAID_SLEEP_TIME by default, -1 for never); cpu-basic takes none (the Hub fixes it at 48 h).
    An upload that fails after the request says which hardware the Space is left with and how to undo it.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    if not (folder / "app.py").is_file() or not (folder / "README.md").is_file():
        raise UserError(f"{folder} is not a Space folder (no app.py/README.md); make one with `sentiment space build`")
    hardware = built_hardware(folder)
    check_hardware(hardware)
    sleep_time = _sleep_time(hardware, sleep_time)
    require_token()
    api = HfApi()
    billing = "offline, a token without write access, or paid hardware without billing set up?"
    _on_hub(
        f"create the Space {repo}",
        lambda: api.create_repo(
            repo,
            repo_type="space",
            space_sdk="gradio",
            space_hardware=hardware,
            space_sleep_time=sleep_time,
            private=private,
            exist_ok=True,
        ),
        billing,
    )
    _on_hub(
        f"request {hardware} for the Space {repo}",
        lambda: api.request_space_hardware(repo, hardware, sleep_time=sleep_time),
        billing,
    )
    _on_hub(
        f"push to the Space {repo}",
        lambda: api.upload_folder(
            folder_path=str(folder), repo_id=repo, repo_type="space", commit_message="Deploy with sentiment space push"
        ),
        "offline, or the token lacks write access?",
        _left_requested(repo, hardware, sleep_time),
    )
    return f"https://huggingface.co/spaces/{repo}"


def _sleep_time(hardware: str, sleep_time: int | None) -> int | None:
    """The sleep time to ask for: none on cpu-basic, PAID_SLEEP_TIME unless told on paid hardware."""
    if hardware == "cpu-basic":
        if sleep_time is not None:
            raise UserError(
                "--sleep-time: a cpu-basic (free) Space sleeps after 48 hours without visitors, which the Hub does "
                "not let you change; the option is for paid hardware"
            )
        return None
    if sleep_time is None:
        return PAID_SLEEP_TIME
    if sleep_time <= 0 and sleep_time != -1:
        raise UserError(f"--sleep-time: seconds without visitors, above 0 (or -1 never to sleep), not {sleep_time}")
    return sleep_time


def _left_requested(repo: str, hardware: str, sleep_time: int | None) -> str:
    """What a failed upload leaves behind: paid hardware requested for the Space, and how to undo that."""
    if hardware == "cpu-basic":
        return ""
    sleeps = "it never sleeps" if sleep_time == -1 else f"it sleeps after {sleep_time} s without visitors"
    return (
        f"; {hardware} is now requested for the Space and billed while it runs ({sleeps}): to undo that, pause "
        f"the Space or request cpu-basic on https://huggingface.co/spaces/{repo}/settings"
    )


def _on_hub(what: str, call: Callable[[], object], causes: str, after: str = "") -> None:
    """Run one Hub call; a failure becomes one line: the step, the error, the likely causes, then `after`."""
    try:
        call()
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise UserError(f"could not {what}: {type(error).__name__}: {first} ({causes}){after}") from error
