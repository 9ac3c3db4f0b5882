"""What every benchmark script records the same way: the CPU it ran on, and its report."""

from __future__ import annotations

import contextlib
import json
import platform
import subprocess
import time
from pathlib import Path

from review_sentiment import providers

# bench_scoring times our scorer with this batching too (its default before `default_batching`), and the
# renderer compares the default with it: one definition for both.
EARLIER_DEFAULT = providers.Batching(rows=32)


def ours(kind: str) -> str:
    """The name bench_scoring gives our scorer's runs of one export ('fp32', 'int8'), as the renderer finds them."""
    return f"(c) ours, {kind}"


# The int8 run with every ONNX Runtime fusion, which the renderer tells apart from our default.
EVERY_FUSION = ours("int8") + ", every ONNX Runtime fusion"


@contextlib.contextmanager
def every_fusion():
    """Sessions opened inside keep every ONNX Runtime graph fusion, as they did before a CPU session left out
    `providers.CPU_SLOWER_FUSIONS`: bench_scoring times the int8 scorer both ways in one run. A scorer opens its
    single-thread session on first need: make that call inside too (bench_scoring's warm-up does)."""
    left_out = providers.CPU_SLOWER_FUSIONS
    providers.CPU_SLOWER_FUSIONS = ()
    try:
        yield
    finally:
        providers.CPU_SLOWER_FUSIONS = left_out


def cpu_model() -> str:
    """The CPU's model name as lscpu prints it ('?' where lscpu has none)."""
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    return next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), "?")


def machine() -> str:
    """The CPU and Python a figure was measured with."""
    return f"{cpu_model()}, {platform.python_implementation()} {platform.python_version()}"


def fastest_pipeline(results: list[dict]) -> dict:
    """bench_scoring's reference: the faster of the transformers pipeline runs ('(a) ...', one per batch size)."""
    return max((r for r in results if r["name"].startswith("(a)")), key=lambda r: r["reviews_per_s"])


class RecordingSession:
    """An ONNX Runtime session whose calls are recorded: their (batch, padded length) into `shapes` (a list that
    several sessions may share) and the seconds spent inside them."""

    def __init__(self, session, shapes: list | None = None) -> None:
        self.session, self.shapes, self.seconds = session, [] if shapes is None else shapes, 0.0

    def run(self, names, feeds, *args, **kwargs):
        self.shapes.append(feeds["input_ids"].shape)
        started = time.perf_counter()
        try:
            return self.session.run(names, feeds, *args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str):
        return getattr(self.session, name)


def write_report(path: Path, report: dict) -> None:
    """The report as JSON at `path` (benchmarks/results/ by default, which render_benchmarks.py reads), and on
    the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
