"""What every benchmark script records the same way: the CPU it ran on, and its report."""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it ('?' where lscpu has none)."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")


def machine() -> str:
    """The CPU and Python a figure was measured with."""
    return f"{cpu_model()}, {platform.python_implementation()} {platform.python_version()}"


def write_report(path: Path, report: dict) -> None:
    """The report as JSON at `path` (benchmarks/results/ by default, which render_benchmarks.py reads), and on
    the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
