"""`python -m review_sentiment.app`: the app with the bundled model (GRADIO_SERVER_NAME/PORT are honoured)."""

import sys

from ..errors import UserError, require
from ..log import setup_logging

try:
    require("app", "python -m review_sentiment.app")
    require("cpu", "python -m review_sentiment.app")
except UserError as error:
    sys.exit(f"error: {error}")

from .ui import build_demo, launch

setup_logging()
launch(build_demo())
