"""`score-csv`: score a file of reviews on ONNX Runtime, streaming, resumable, losing no row.

Each input row appears in the output exactly once, in input order, with every original column and
`label`, `score` (probability of the model's second label: positive for the default labels), `confidence` (probability of the
predicted label) and `status` ("ok"; "uncertain" when below --min-confidence, label kept; or why the row
was not scored). A model with more than two labels writes `label`, `confidence`, one `p_<label>`
probability per class, then `status`. The output keeps the input's
format (reviews.tsv → reviews.scored.tsv) unless --output names another.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from ..configargs import add_config_arguments, config_from_args
from ..errors import UserError, require
from ..log import run_guarded, setup_logging
from .config import BatchConfig
from .formats import FORMATS, OUTPUT_FORMATS

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score-csv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_config_arguments(parser, BatchConfig, positional=("input",))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv: list[str] | None = None, verbose: bool = False) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose or verbose)

    def run() -> None:
        cfg = config_from_args(BatchConfig, args)
        local_file = cfg.engine == "local" and cfg.output != "-"  # Ray also writes folders and URIs
        if local_file and FORMATS.get(Path(cfg.output).suffix.lower()) not in OUTPUT_FORMATS:
            raise UserError(f"--output must end in .csv, .tsv, .parquet, .jsonl or .json, not {cfg.output}")
        try:
            require("cpu", "score-csv")
            from .score_file import score_file

            summary = score_file(cfg)
        except KeyboardInterrupt:
            if cfg.engine == "ray":
                raise UserError(
                    "interrupted: nothing was written (a Ray run starts again from the beginning)"
                ) from None
            raise UserError("interrupted: finished chunks are kept; continue with --resume") from None
        except BrokenPipeError:
            # The reader of stdout went away (`| head`): stop quietly, as other command-line tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise UserError("stdout was closed before every row was written") from None
        if warning := summary.gold_warning():
            log.warning(warning)
        print(summary.text(), file=sys.stderr)

    return run_guarded(run)


if __name__ == "__main__":
    sys.exit(main())
