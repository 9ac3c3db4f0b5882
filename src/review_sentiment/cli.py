"""`sentiment`: train, evaluate, merge, export, score, app and space, each a thin layer over a stage."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from .configargs import add_config_arguments, config_from_args
from .errors import UserError


def setup_logging(verbose: bool = False) -> None:
    """Our own messages at INFO; libraries (quantizer, httpx, hub) only when they warn."""
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr
    )
    logging.getLogger("review_sentiment").setLevel(logging.DEBUG if verbose else logging.INFO)


def run_guarded(action: Callable[[], object]) -> int:
    """Run a stage; a UserError becomes one line on stderr and exit status 2, never a traceback."""
    try:
        action()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    train(config_from_args(TrainConfig, args))


def _evaluate(args: argparse.Namespace) -> None:
    from .evaluate import EvaluateConfig, evaluate

    metrics = evaluate(config_from_args(EvaluateConfig, args))
    print(
        f"accuracy {metrics['accuracy']:.4f}  macro F1 {metrics['macro_f1']:.4f}  "
        f"ROC-AUC {metrics['roc_auc']:.4f}  on {metrics['count']} reviews"
    )
    for name, row in metrics["per_class"].items():
        print(
            f"  {name:<9} precision {row['precision']:.4f}  recall {row['recall']:.4f}  "
            f"F1 {row['f1']:.4f}  support {row['support']}"
        )


def _merge(args: argparse.Namespace) -> None:
    from .modeling import merge_adapter_dir

    out = merge_adapter_dir(
        Path(args.adapter), Path(args.output or Path(args.adapter).parent / "merged"), args.overwrite
    )
    print(out)


def _export(args: argparse.Namespace) -> None:
    from .export import ExportConfig, check, export

    if args.check:
        check(Path(args.check))
        return
    export(config_from_args(ExportConfig, args))


def _app(args: argparse.Namespace) -> None:
    from .app import build_demo, launch
    from .runtime import Scorer

    launch(build_demo(Scorer.load(args.model, args.provider, args.threads)), args.host, args.port, args.share)


def _space(args: argparse.Namespace) -> None:
    from .space import build_space, push_space

    if args.space_command == "build":
        print(build_space(args.model, Path(args.output), args.model_repo, args.hardware, overwrite=args.overwrite))
    else:
        print(push_space(Path(args.folder), args.repo, args.private))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sentiment",
        description="Movie-review sentiment: fine-tune BERT with LoRA, export to ONNX, score files, serve an app.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from .evaluate import EvaluateConfig
    from .train import TrainConfig

    p = commands.add_parser(
        "train",
        help="fine-tune a BERT-family model with LoRA",
        description="Fine-tune with LoRA; writes adapter/, merged/, metrics.json, "
        "history.jsonl, plots and a model card into --output.",
    )
    add_config_arguments(p, TrainConfig)
    p.set_defaults(action=_train)

    p = commands.add_parser("evaluate", help="metrics and plots of a model on labelled reviews")
    add_config_arguments(p, EvaluateConfig, positional=("model",))
    p.set_defaults(action=_evaluate)

    p = commands.add_parser("merge", help="merge a LoRA adapter folder into a plain model folder")
    p.add_argument("adapter", help="adapter folder written by train (a merged folder is left as it is)")
    p.add_argument("--output", help="merged folder (default: ADAPTER/../merged)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    p.set_defaults(action=_merge)

    from .export import ExportConfig
    from .runtime import PROVIDERS

    p = commands.add_parser(
        "export",
        help="export to ONNX (optionally optimized and quantized) and verify it",
        description=sys.modules["review_sentiment.export"].__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_config_arguments(p, ExportConfig, positional=("model",))
    p.add_argument("--check", metavar="FOLDER", help="only re-verify an exported folder")
    p.set_defaults(action=_export)

    p = commands.add_parser("score", help="score a file of reviews (the same as score-csv)", add_help=False)
    p.set_defaults(action=None)

    p = commands.add_parser("app", help="serve the Gradio app on ONNX Runtime")
    p.add_argument("--model", help="exported model folder or Hub id (default: the bundled model)")
    p.add_argument("--provider", default="auto", choices=PROVIDERS, help="ONNX Runtime provider")
    p.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads")
    p.add_argument("--host", help="address to bind (default 127.0.0.1, or $GRADIO_SERVER_NAME)")
    p.add_argument("--port", type=int, help="port (default $GRADIO_SERVER_PORT, else 7860)")
    p.add_argument("--share", action="store_true", help="open a public gradio.live link (off by default)")
    p.set_defaults(action=_app)

    p = commands.add_parser("space", help="build or push a Hugging Face Space")
    space = p.add_subparsers(dest="space_command", required=True, metavar="{build,push}")
    b = space.add_parser("build", help="write a folder ready to push as a Space")
    b.add_argument("--model", help="exported model folder to copy in (default: the bundled model)")
    b.add_argument("--model-repo", help="Hub model id to load at start instead of copying a model in")
    b.add_argument("--output", default="dist/space", help="folder to write (default dist/space)")
    b.add_argument("--hardware", default="cpu-basic", help="suggested_hardware: cpu-basic, t4-small, a10g-small, …")
    b.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    u = space.add_parser("push", help="upload a built Space folder with huggingface_hub")
    u.add_argument("folder", help="folder written by `sentiment space build`")
    u.add_argument("--repo", required=True, help="Space id, user/name")
    u.add_argument("--private", action="store_true", help="create the Space private")
    p.set_defaults(action=_space)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    argv = sys.argv[1:] if argv is None else argv
    options = [a for a in argv[: argv.index("score")] if a.startswith("-")] if "score" in argv else None
    if options is not None and len(options) == argv.index("score") and set(options) <= {"-v", "--verbose"}:
        # `sentiment [-v] score …` is score-csv, whose own parser reads the rest.
        from .batch import main as score_main

        return score_main(argv[argv.index("score") + 1 :], verbose=bool(options))
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    return run_guarded(lambda: args.action(args))


if __name__ == "__main__":
    sys.exit(main())
