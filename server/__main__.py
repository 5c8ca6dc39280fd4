"""`python -m server`: run the backend or manage its API keys (see server/cli.py)."""

import sys

from .cli import main

sys.exit(main())
