"""`python -m review_sentiment.batch` is `score-csv`."""

import sys

from .cli import main

sys.exit(main())
