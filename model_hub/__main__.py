"""`python -m model_hub`: see model_hub/cli.py."""

import sys

from .cli import main

sys.exit(main())
