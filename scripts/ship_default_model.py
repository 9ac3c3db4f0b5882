"""python scripts/ship_default_model.py runs/minilm-lora-v3 --max-length 384

Export a finished training run as the bundled default model (static int8, calibrated, package data) and
add provenance to its model card: the exact training and export commands, code commit, machine, time,
split, sizes; then evaluate the shipped model on all its validation reviews
(benchmarks/results/evaluate_default.json, which render_benchmarks.py reads).

The default run was trained with:
    sentiment train --base-model minilm --dataset ../shared/data/imdb_train.parquet \
        --output runs/minilm-lora-v3 --epochs 2 --lr 5e-4 --batch-size 16 --eval-every 400 --patience 4 \
        --checkpoint-every 100 --log-every 50 --precision bf16
It ran on the code of commit 8dfc77d. It was stopped with Ctrl-C at step 184 (other work was slowing it)
and continued to its end with the same command plus `--resume --time-limit 130` (resume is exact:
tests/train/test_train.py checks it bit for bit); it keeps the best evaluated weights.

`python scripts/ship_default_model.py --card-only` re-renders the bundled model's card from its manifest
and the provenance section already in it (no export): for when the card's format changes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from review_sentiment.card import write_model_card
from review_sentiment.cli import main as sentiment
from review_sentiment.export.verify import card_section
from review_sentiment.manifest import DEFAULT_MODEL_DIR

TRAIN_COMMAND = " ".join(__doc__.split("trained with:\n", 1)[1].split("\nIt ran", 1)[0].replace("\\", " ").split())
TRAIN_HISTORY = " ".join(__doc__.split("\nIt ran ", 1)[1].split("\n\n", 1)[0].split())


PROVENANCE = "\n## Provenance of the bundled default model\n"
EVALUATION = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "evaluate_default.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, nargs="?", help="training output folder (with merged/)")
    parser.add_argument("--validation-samples", type=int, default=1000)
    parser.add_argument("--max-length", type=int, help="tokens the bundled model reads (default: training's)")
    parser.add_argument("--card-only", action="store_true", help="only re-render the card from the shipped manifest")
    args = parser.parse_args()
    if args.card_only:
        card = DEFAULT_MODEL_DIR / "README.md"
        provenance = PROVENANCE + card.read_text().split(PROVENANCE, 1)[1]
        render_card(provenance)
        return
    if args.run is None:
        parser.error("give the training run folder (or --card-only)")
    export_args = [
        "export",
        str(args.run / "merged"),
        "--output",
        str(DEFAULT_MODEL_DIR),
        "--quantize",
        "int8",
        "--validation-samples",
        str(args.validation_samples),
        "--overwrite",
        *(["--max-length", str(args.max_length)] if args.max_length else []),
    ]
    assert sentiment(export_args) == 0
    render_card(_provenance(args.run, export_args))
    evaluate_shipped()


def evaluate_shipped() -> None:
    """`sentiment evaluate` of the shipped model on all its validation reviews, as the README and BENCHMARKS.md
    report it (accuracy, accuracy vs coverage): benchmarks/results/evaluate_default.json."""
    with tempfile.TemporaryDirectory() as tmp:
        assert sentiment(["evaluate", str(DEFAULT_MODEL_DIR), "--output", f"{tmp}/evaluation"]) == 0
        EVALUATION.write_text((Path(tmp) / "evaluation" / "metrics.json").read_text())


def render_card(provenance: str) -> None:
    """The bundled model's card from its manifest (as export writes it), with the provenance section."""
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    rows = manifest["export_check"]["variants"]
    card = DEFAULT_MODEL_DIR / "README.md"
    write_model_card(card, manifest, "onnx", manifest["validation_metrics"], card_section(manifest, rows))
    card.write_text(card.read_text() + provenance)


def _provenance(run: Path, export_args: list[str]) -> str:
    manifest = json.loads((DEFAULT_MODEL_DIR / "manifest.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    training = manifest["training"]
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1e6:.1f} MB" for p in sorted(DEFAULT_MODEL_DIR.iterdir()))
    output = DEFAULT_MODEL_DIR.relative_to(Path(__file__).resolve().parents[1])  # no path of this machine
    command = [*export_args[:1], f"runs/{run.name}/merged", export_args[2], str(output), *export_args[4:]]
    return f"""{PROVENANCE}- Training command (it ran {TRAIN_HISTORY} Package code at export: commit `{commit}`):
  ```
  {TRAIN_COMMAND}
  ```
- Export command: `sentiment {" ".join(command)}`
- Machine: {cpu}, 2 cores, no GPU; {training.get("device")} {training.get("dtype")} autocast;
  {training.get("train_seconds")} s of training at {training.get("reviews_per_second")} reviews/s
  ({training.get("steps")} optimizer steps, {training.get("epochs_completed")} epochs; stop: {training.get("stop_reason")}).
- Data: the IMDB train split (25,000 reviews; {manifest["data"]["train"]["dropped_duplicates"]} duplicates dropped),
  validation = {manifest["data"]["split"]} ({manifest["data"]["validation"]["rows"]} reviews). The IMDB test split was not used.
- Files: {sizes}.
"""


if __name__ == "__main__":
    main()
