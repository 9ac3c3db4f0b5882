"""Logging set-up and the guard every command runs under (a UserError is one line, never a traceback)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

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
