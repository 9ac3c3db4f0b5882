"""`sentiment`: train, evaluate, merge, export, score, app, space and push, each a thin layer over a stage."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .app import MIN_CONFIDENCE
from .configargs import add_config_arguments, config_from_args
from .errors import UserError, require
from .log import run_guarded, setup_logging
from .providers import PROVIDERS

# Each subcommand imports its stage only when it runs: --help needs neither torch nor gradio.


def _train(args: argparse.Namespace) -> None:
    require("train", "sentiment train")
    from .train.config import TrainConfig
    from .train.loop import train

    train(config_from_args(TrainConfig, args))


def _evaluate(args: argparse.Namespace) -> None:
    require("train", "sentiment evaluate")
    if (Path(args.model) / "manifest.json").exists():
        require("cpu", "sentiment evaluate of an exported folder")
    from .train.config import EvaluateConfig
    from .train.evaluate import evaluate

    print_metrics(evaluate(config_from_args(EvaluateConfig, args)))


def print_metrics(metrics: dict) -> None:
    """Evaluation figures as `sentiment evaluate` prints them: overall, one row per class in label order, then
    calibration and accuracy by coverage; mean absolute error and within-one for numeric labels (ratings)."""
    auc = "ROC-AUC" if len(metrics["per_class"]) == 2 else "ROC-AUC (macro, one-vs-rest)"
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"{auc} {metrics['roc_auc']:.4f}  on {metrics['count']} reviews"
    )
    if "mean_absolute_error" in metrics:
        print(
            f"mean absolute error {metrics['mean_absolute_error']:.4f} (in label units)  "
            f"within one class {metrics['within_one_class']:.4f}"
        )
    width = max(9, *(len(name) for name in metrics["per_class"]))
    for name, row in metrics["per_class"].items():
        print(
            f"  {name:<{width}} precision {row['precision']:.4f}  recall {row['recall']:.4f}  "
            f"F1 {row['f1']:.4f}  support {row['support']}"
        )
    print(f"calibration: ECE {metrics['ece']:.4f}  Brier {metrics['brier']:.4f}")
    print("coverage  threshold  accuracy  (keep the most confident reviews)")
    for row in metrics["coverage"]:
        print(
            f"  {row['coverage']:>5.0%}     {row['threshold']:.3f}    {row['accuracy']:.4f}  ({row['reviews']} reviews)"
        )


def _merge(args: argparse.Namespace) -> None:
    require("train", "sentiment merge")
    from .train.modeling import merge_adapter_dir

    out = merge_adapter_dir(
        Path(args.adapter), Path(args.output or Path(args.adapter).parent / "merged"), args.overwrite
    )
    print(out)


def _export(args: argparse.Namespace) -> None:
    if args.check:
        require("export", "sentiment export --check")
        require("cpu", "sentiment export --check")
        from .export.pipeline import check

        check(Path(args.check))
        return
    require("export", "sentiment export")
    require("cpu", "sentiment export")  # it checks every variant on ONNX Runtime
    from .export.config import ExportConfig
    from .export.pipeline import export

    export(config_from_args(ExportConfig, args))


def _app(args: argparse.Namespace) -> None:
    require("cpu", "sentiment app")
    require("app", "sentiment app")
    from .app.ui import build_demo, launch
    from .scorer import Scorer

    if not 0 <= args.min_confidence < 1:
        raise UserError(
            f"--min-confidence must be at least 0 and below 1 (a share, such as 0.8), not {args.min_confidence}"
        )
    scorer = Scorer.load(args.model, args.provider, args.threads)
    launch(build_demo(scorer, args.min_confidence), args.host, args.port, args.share)


def _space(args: argparse.Namespace) -> None:
    require("app", f"sentiment space {args.space_command}")  # the Space's SDK version is the installed gradio's
    from .app.space import build_space, push_space

    if args.space_command == "build":
        print(build_space(args.model, Path(args.output), args.model_repo, args.hardware, overwrite=args.overwrite))
    else:
        print(push_space(Path(args.folder), args.repo, args.private, args.sleep_time))


def _push(args: argparse.Namespace) -> None:
    from .hub import push_model

    print(push_model(Path(args.folder), args.repo, args.private))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentiment",
        description="Movie-review sentiment: fine-tune BERT with LoRA, export to ONNX, score files, serve an app.",
        epilog="`sentiment COMMAND --help` explains each command. `score-csv` is `sentiment score`.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_training_commands(commands)
    _add_serving_commands(commands)
    _add_push_command(commands)
    return parser


def _add_training_commands(commands) -> None:
    from .export import __doc__ as export_doc
    from .export.config import ExportConfig
    from .train.config import EvaluateConfig, TrainConfig

    p = commands.add_parser(
        "train",
        help="fine-tune a BERT-family model with LoRA (or every weight: --method full) [train]",
        description="Fine-tune with LoRA (or every weight, --method full); writes adapter/ (LoRA only), merged/, "
        "metrics.json, history.jsonl, plots and a model card into --output. Resumable (--resume) and time-boxed (--time-limit). Needs the [train] extra.",
    )
    add_config_arguments(p, TrainConfig)
    p.set_defaults(action=_train)
    p = commands.add_parser(
        "evaluate",
        help="metrics and plots of a model on labelled reviews [train]",
        description="Accuracy, macro F1, ROC-AUC, per-class figures, confusion matrix and ROC plots of a trained "
        "or exported model, on a labelled file or (by default) on the model's own validation hold-out.",
    )
    add_config_arguments(p, EvaluateConfig, positional=("model",))
    p.set_defaults(action=_evaluate)
    p = commands.add_parser(
        "merge",
        help="merge a LoRA adapter folder into a plain model folder [train]",
        description="Fold LoRA weights into the base model (checked: logits within 1e-4 of the adapter's).",
    )
    p.add_argument("adapter", help="adapter folder written by train (a merged folder is left as it is)")
    p.add_argument("--output", help="merged folder (default: ADAPTER/../merged)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(action=_merge)
    p = commands.add_parser(
        "export",
        help="export to ONNX (optionally optimized and quantized) and verify it [export]",
        description=export_doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, ExportConfig, positional=("model",))
    p.add_argument("--check", metavar="FOLDER", help="only re-verify an exported folder")
    p.set_defaults(action=_export)


def _add_serving_commands(commands) -> None:
    commands.add_parser("score", help="score a file of reviews (the same as score-csv)", add_help=False)
    p = commands.add_parser(
        "app",
        help="serve the Gradio app on ONNX Runtime [app]",
        description="The Gradio app: a review with its word-level explanation, a file scored in the browser, "
        "the model's facts, and /predict and /analyze API endpoints. Needs the [app] extra.",
    )
    p.add_argument("--model", help="exported model folder or Hub id (default: the bundled model)")
    p.add_argument("--provider", default="auto", choices=PROVIDERS, help="ONNX Runtime provider (default: auto)")
    p.add_argument(
        "--threads",
        type=int,
        help="CPU threads (default: every CPU this process may use); on CPU that many calls run at once, one thread each",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, help="port (default $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--share", action="store_true", help="open a public gradio.live link (off by default)")
    p.add_argument(
        "--min-confidence",
        type=float,
        default=MIN_CONFIDENCE,
        help=f"below this calibrated confidence a review is shown as 'not sure' (default: {MIN_CONFIDENCE})",
    )
    p.set_defaults(action=_app)
    _add_space_command(commands)


def _add_space_command(commands) -> None:
    p = commands.add_parser(
        "space",
        help="build or push a Hugging Face Space",
        description="Build a folder that runs the app as a Hugging Face Space (no torch), or upload one.",
    )
    space = p.add_subparsers(dest="space_command", required=True, metavar="{build,push}")
    b = space.add_parser(
        "build",
        help="write a folder ready to push as a Space",
        description="Write app.py, requirements.txt (the [app] and [cpu] extras pinned, or on GPU hardware "
        "onnxruntime-gpu's CUDA 12 build with its CUDA libraries), README.md and the model. GPU hardware "
        "needs an fp32 or fp16 export; the app then asks for the CUDA provider and stops without it.",
    )
    b.add_argument("--model", help="exported model folder to copy in (default: the bundled model)")
    b.add_argument("--model-repo", help="Hub model id to load at start instead of copying a model in")
    b.add_argument("--output", default="dist/space", help="folder to write (default: dist/space)")
    b.add_argument(
        "--hardware",
        default="cpu-basic",
        help="Space hardware, requested on push (default: cpu-basic; also cpu-upgrade, cpu-xl; NVIDIA GPU: "
        "t4-small, l4x1, a10g-small, …; ZeroGPU zero-*, TPUs and other hardware are refused)",
    )
    b.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    u = space.add_parser(
        "push",
        help="upload a built Space folder",
        description="Create or reuse the Space REPO, request the hardware FOLDER was built for, and upload "
        "FOLDER with huggingface_hub (needs `hf auth login` or HF_TOKEN; GPU hardware is billed to the account).",
    )
    u.add_argument("folder", help="folder written by `sentiment space build`")
    u.add_argument("--repo", required=True, help="Space id, user/name")
    u.add_argument("--private", action="store_true", help="create the Space private")
    u.add_argument(
        "--sleep-time",
        type=int,
        metavar="SECONDS",
        help="on paid hardware, seconds without visitors before the Space sleeps and stops billing "
        "(default: 3600; -1: never); cpu-basic sleeps after 48 h on its own and takes no value",
    )
    p.set_defaults(action=_space)


def _add_push_command(commands) -> None:
    p = commands.add_parser(
        "push",
        help="upload a model folder to the Hugging Face Hub as a model repo, with its card",
        description="Create (or reuse) the model repo REPO and upload MODEL_FOLDER with its model card: an "
        "exported ONNX folder (manifest.json, model.onnx, tokenizer, README.md) or a training run's merged/ or "
        "adapter/. The card's front matter carries the Hub metadata (license, library, pipeline_tag, tags, "
        "base model and dataset when they are Hub ids, validation metrics as model-index); merged/ or adapter/ "
        "without a card of ours gets the one `sentiment train` writes. Needs `hf auth login` or HF_TOKEN, and "
        "HF_HUB_OFFLINE unset.",
    )
    p.add_argument("folder", metavar="MODEL_FOLDER", help="exported ONNX folder, or a run's merged/ or adapter/")
    p.add_argument("--repo", required=True, help="model repo id, user/name or organization/name")
    p.add_argument(
        "--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)"
    )
    p.set_defaults(action=_push)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    argv = sys.argv[1:] if argv is None else argv
    options = [a for a in argv[: argv.index("score")] if a.startswith("-")] if "score" in argv else None
    if options is not None and len(options) == argv.index("score") and set(options) <= {"-v", "--verbose"}:
        # `sentiment [-v] score …` is score-csv, whose own parser reads the rest.
        from .batch.cli import main as score_main

        return score_main(argv[argv.index("score") + 1 :], verbose=bool(options))
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded(lambda: args.action(args))


if __name__ == "__main__":
    sys.exit(main())
