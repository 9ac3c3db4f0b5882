"""`python -m review_sentiment.app`: the app with the bundled model (GRADIO_SERVER_NAME/PORT are honoured)."""

from ..log import setup_logging
from .ui import build_demo, launch

setup_logging()
launch(build_demo())
