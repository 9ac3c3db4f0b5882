"""One exception type for mistakes a user can fix, and the check that a stage's extra is installed."""

from __future__ import annotations

from importlib.util import find_spec

# What each extra brings, by the modules a stage imports first; `require` names the extra to install.
EXTRAS: dict[str, tuple[str, ...]] = {
    "cpu": ("onnxruntime",),
    "app": ("gradio",),
    "train": ("torch", "transformers", "peft", "datasets", "matplotlib", "safetensors"),
    "export": ("torch", "transformers", "peft", "datasets", "optimum.onnxruntime", "onnx"),
    "ray": ("ray",),
}


class UserError(Exception):
    """Bad input, a missing file, a refused overwrite: printed without a traceback, exit code 2."""


def _installed(module: str) -> bool:
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing, or a module without a spec
        return False


def require(extra: str, what: str) -> None:
    """Fail in one line, naming the extra to install, when `what` needs modules that are not installed."""
    missing = [m for m in EXTRAS[extra] if not _installed(m)]
    if not missing:
        return
    install = (
        "'review-sentiment[cpu]' (or [gpu] on a CUDA machine)" if extra == "cpu" else f"'review-sentiment[{extra}]'"
    )
    verb = "is" if len(missing) == 1 else "are"
    raise UserError(f"{what} needs {', '.join(missing)}, which {verb} not installed: pip install {install}")
