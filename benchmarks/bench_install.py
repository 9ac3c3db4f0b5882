"""python benchmarks/bench_install.py --out benchmarks/results/install.json

What each install costs, measured on fresh virtual environments in one run: (a) "serving",
`pip install <repo>[cpu]`: install time, size on disk, and checks (score-csv scores
examples/reviews.csv, torch and gradio are absent); (b) "serving + app", `[cpu,app]`: time, size,
gradio importable; (c) "full", `pip install torch==2.13.0` then `[cpu,app,train,export]`: time and
size (--skip-full leaves it out); (d) wall time of the CLIs' --help (median of 5 after a warm-up) in
the serving venv and in the developer venv (--dev-venv), and whether building the `sentiment` parser
imports torch or gradio (`python -X importtime`).

The repo is copied (its source files, without .git, venvs and build outputs) to a temp folder and
installed from there, non-editable, so the build writes no build/ or egg-info into the checkout.
Installs use pip's cache as configured (no --no-cache-dir); whether it existed is recorded. Sizes are
the summed apparent sizes of the files under the venv, as `du -sb` counts them. Run it niced where
other jobs share the machine: `nice -n 10 python benchmarks/bench_install.py`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from bench_common import cpu_model  # this folder is on sys.path when run as a script

REPO = Path(__file__).resolve().parents[1]
REPO_COPY = "repo"  # the folder under the run's temp folder that the repo is copied to and installed from
TORCH = "torch==2.13.0"
MB = 1e6
HELP_COMMANDS = {
    "sentiment --help": ["sentiment", "--help"],
    "sentiment score --help": ["sentiment", "score", "--help"],
    "score-csv --help": ["score-csv", "--help"],
    "sentiment train --help": ["sentiment", "train", "--help"],
}
# What a copy of the repo for installing leaves out: at its top, VCS data, environments and outputs; anywhere, caches.
TOP_LEVEL_IGNORE = {".git", ".venv", "venv", "build", "dist", "runs", "models", ".hypothesis"}
ANYWHERE_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", ".*_cache")


class StepError(RuntimeError):
    """A command this benchmark needs failed; the message says which, and what it printed last."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repo", type=Path, default=REPO, help="the repo to install (default: this script's repo)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/install.json"), help="JSON report to write"
    )
    parser.add_argument("--python", default=sys.executable, help="interpreter that creates the fresh venvs")
    parser.add_argument("--dev-venv", type=Path, default=REPO / ".venv", help="the full developer venv for (d)")
    parser.add_argument("--skip-full", action="store_true", help="skip (c), the full install with torch")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per --help command, after one warm-up")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder with the venvs")
    return parser.parse_args(argv)


def machine() -> dict:
    """CPU model, cores, memory, Python, and the load when the run started (another job skews timings)."""
    pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(pages / 2**30, 1),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def clean_env(venv: Path | None = None) -> dict:
    """The caller's environment without its venv or PYTHONPATH; `venv`'s bin first on PATH when given."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    if venv is not None:
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    return env


def run(cmd: list[str], what: str, venv: Path | None = None, cwd: Path | None = None) -> float:
    """Run `cmd` to completion and return its wall seconds; raise StepError with its output's tail if it fails."""
    print(f"[bench_install] {what}: {' '.join(cmd)}", flush=True)
    started = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=clean_env(venv), cwd=cwd)
    except subprocess.CalledProcessError as err:
        tail = "\n".join((err.stdout + err.stderr).strip().splitlines()[-25:])
        raise StepError(f"{what} failed (exit {err.returncode}): {' '.join(cmd)}\n{tail}") from err
    except FileNotFoundError as err:
        raise StepError(f"{what}: cannot run {cmd[0]}: {err}") from err
    seconds = time.perf_counter() - started
    print(f"[bench_install]   {seconds:.1f} s", flush=True)
    return seconds


def succeeds(cmd: list[str], venv: Path, cwd: Path) -> bool:
    """Whether `cmd` exits 0 (its output is discarded)."""
    done = subprocess.run(cmd, capture_output=True, env=clean_env(venv), cwd=cwd, check=False)
    return done.returncode == 0


def dir_size(path: Path) -> int:
    """Apparent size in bytes of `path` and everything under it, links not followed, hard links once (`du -sb`)."""
    total, seen = os.lstat(path).st_size, set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            stat = os.lstat(os.path.join(root, name))
            if stat.st_nlink > 1 and not os.path.isdir(os.path.join(root, name)):
                if (stat.st_dev, stat.st_ino) in seen:
                    continue
                seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise StepError(f"no lib/python*/site-packages in {venv}")
    return found[0]


def top_site_packages(venv: Path, count: int = 10) -> list[dict]:
    """The `count` largest entries of the venv's site-packages, in MB, largest first."""
    sizes = []
    for entry in site_packages(venv).iterdir():
        size = dir_size(entry) if entry.is_dir() and not entry.is_symlink() else entry.lstat().st_size
        sizes.append({"name": entry.name, "mb": round(size / MB, 1)})
    return sorted(sizes, key=lambda s: -s["mb"])[:count]


def copy_repo(repo: Path, dest: Path) -> Path:
    """A copy of the repo's sources to install from, so that building writes nothing into the checkout."""
    if not (repo / "pyproject.toml").is_file():
        raise StepError(f"--repo {repo} has no pyproject.toml")

    def ignore(folder: str, names: list[str]) -> set[str]:
        top = set(names) & TOP_LEVEL_IGNORE if Path(folder) == repo else set()
        return top | ANYWHERE_IGNORE(folder, names)

    shutil.copytree(repo, dest, ignore=ignore, symlinks=True)
    return dest


def make_venv(python: str, venv: Path) -> dict:
    """A fresh venv with pip upgraded (as the Makefile does); this setup is timed apart from the install."""
    seconds = run([python, "-m", "venv", str(venv)], f"create venv {venv.name}")
    seconds += run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--upgrade", "pip"], "upgrade pip", venv)
    pip = subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    return {"setup_seconds": round(seconds, 1), "pip": pip, "empty_venv_mb": round(dir_size(venv) / MB, 1)}


def install(venv: Path, steps: list[list[str]], source: Path) -> dict:
    """Run each `pip install` step in `venv`; their seconds (the repo copy `source` shown as <repo>), total and size."""
    seconds = []
    for requirements in steps:
        cmd = [str(venv / "bin/python"), "-m", "pip", "install", "-q", *requirements]
        seconds.append(round(run(cmd, f"install {' '.join(requirements)}", venv), 1))
    return {
        "steps": [
            {"pip_install": " ".join(r).replace(str(source), "<repo>"), "seconds": s}
            for r, s in zip(steps, seconds, strict=True)
        ],
        "install_seconds": round(sum(seconds), 1),
        "size_mb": round(dir_size(venv) / MB, 1),
        "top_site_packages": top_site_packages(venv),
    }


def data_rows(path: Path) -> int:
    return len(pd.read_csv(path))


def check_score_csv(venv: Path, reviews: Path, work: Path) -> dict:
    """score-csv on the example file: exit status, and data rows out against data rows in (pandas, out here)."""
    out = work / "out.csv"
    cmd = [str(venv / "bin/score-csv"), str(reviews), "--output", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(venv), cwd=work, check=False)
    if done.returncode != 0:
        print(f"[bench_install] score-csv failed (exit {done.returncode}):\n{done.stderr[-2000:]}", flush=True)
    rows_in = data_rows(reviews)
    rows_out = data_rows(out) if out.is_file() else None
    return {
        "score_csv_exit": done.returncode,
        "score_csv_rows_in": rows_in,
        "score_csv_rows_out": rows_out,
        "score_csv_ok": done.returncode == 0 and rows_out == rows_in,
    }


def import_checks(venv: Path, work: Path, modules: tuple[str, ...]) -> dict:
    """Whether `python -c "import M"` succeeds in `venv`, for each module."""
    python = str(venv / "bin/python")
    return {f"{module}_importable": succeeds([python, "-c", f"import {module}"], venv, work) for module in modules}


def measure_install(name: str, steps: list[list[str]], args: argparse.Namespace, tmp: Path) -> tuple[dict, Path]:
    """A fresh venv under `tmp`, the install steps timed, and its size; returns the record and the venv."""
    venv = tmp / f"venv-{name}"
    print(f"\n[bench_install] === {name} ===", flush=True)
    record = {"name": name, **make_venv(args.python, venv)}
    record.update(install(venv, steps, tmp / REPO_COPY))
    print(f"[bench_install] {name}: {record['install_seconds']} s, {record['size_mb']} MB", flush=True)
    return record, venv


def median_wall(cmd: list[str], venv: Path, cwd: Path, runs: int) -> dict:
    """Wall seconds of `cmd`: one warm-up, then the median of `runs` runs; and whether the warm-up exited 0."""
    env = clean_env(venv)
    warm = subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, check=False)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env, cwd=cwd, check=False)
        times.append(time.perf_counter() - started)
    return {"ok": warm.returncode == 0, "median_s": round(statistics.median(times), 3), "runs": runs}


def cli_startup(venv: Path, cwd: Path, runs: int) -> dict:
    """--help wall times of the console scripts that exist in `venv`."""
    results = {}
    for label, (script, *rest) in HELP_COMMANDS.items():
        path = venv / "bin" / script
        results[label] = median_wall([str(path), *rest], venv, cwd, runs) if path.exists() else {"exists": False}
        print(f"[bench_install]   {label}: {results[label]}", flush=True)
    return results


def parser_imports(venv: Path, cwd: Path) -> dict:
    """Whether building the `sentiment` parser imports torch or gradio, from `python -X importtime`'s stderr."""
    code = "from review_sentiment.cli import build_parser; build_parser()"
    cmd = [str(venv / "bin/python"), "-X", "importtime", "-c", code]
    done = subprocess.run(cmd, capture_output=True, text=True, env=clean_env(venv), cwd=cwd, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    heavy = ("torch", "gradio", "transformers", "onnxruntime")
    found = {f"imports_{top}": any(n == top or n.startswith(f"{top}.") for n in names) for top in heavy}
    return {"build_parser_exit": done.returncode, "modules_imported": len(names), **found}


def startup_section(venv: Path, cwd: Path, runs: int) -> dict:
    print(f"\n[bench_install] === CLI start-up in {venv} ===", flush=True)
    return {"venv": str(venv), "help": cli_startup(venv, cwd, runs), "parser_imports": parser_imports(venv, cwd)}


def pip_cache() -> dict:
    """Where pip's cache is and how big it is now (a warm cache makes later installs faster)."""
    done = subprocess.run([sys.executable, "-m", "pip", "cache", "dir"], capture_output=True, text=True, check=False)
    where = Path(done.stdout.strip()) if done.returncode == 0 and done.stdout.strip() else None
    present = where is not None and where.is_dir()
    return {"dir": str(where), "present": present, "mb": round(dir_size(where) / MB, 1) if present else 0.0}


def serving_parts(args: argparse.Namespace, tmp: Path, source: Path) -> tuple[dict, Path]:
    """(a) serving with its checks, and (b) serving + app; returns the records and the serving venv."""
    work = tmp / "work"
    work.mkdir()
    serving, serving_venv = measure_install("serving", [[f"{source}[cpu]"]], args, tmp)
    serving["checks"] = check_score_csv(serving_venv, source / "examples/reviews.csv", work)
    serving["checks"].update(import_checks(serving_venv, work, ("torch", "gradio")))
    serving["checks"]["torch_absent"] = not serving["checks"]["torch_importable"]
    serving["checks"]["gradio_absent"] = not serving["checks"]["gradio_importable"]
    app, app_venv = measure_install("serving+app", [[f"{source}[cpu,app]"]], args, tmp)
    app["checks"] = import_checks(app_venv, work, ("gradio",))
    return {"serving": serving, "serving+app": app}, serving_venv


def full_part(args: argparse.Namespace, tmp: Path, source: Path) -> dict:
    """(c) the full install: torch's CPU wheel first, then every extra but ray."""
    full, venv = measure_install("full", [[TORCH], [f"{source}[cpu,app,train,export]"]], args, tmp)
    full["checks"] = import_checks(venv, tmp / "work", ("torch", "gradio"))
    return full


def measure(args: argparse.Namespace, tmp: Path) -> dict:
    source = copy_repo(args.repo.resolve(), tmp / REPO_COPY)
    report = {"date": time.strftime("%Y-%m-%d"), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    report.update({"machine": machine(), "repo": str(args.repo.resolve()), "pip_cache_before": pip_cache()})
    installs, serving_venv = serving_parts(args, tmp, source)
    if not args.skip_full:
        installs["full"] = full_part(args, tmp, source)
    report["installs"] = installs
    startup = {"serving": startup_section(serving_venv, tmp / "work", args.runs)}
    if args.dev_venv.is_dir():
        startup["dev"] = startup_section(args.dev_venv.resolve(), tmp / "work", args.runs)
    report["startup"] = startup
    return report


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-install-"))
    try:
        report = measure(args, tmp)
    except StepError as err:
        print(f"[bench_install] error: {err}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"[bench_install] kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(f"[bench_install] wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
