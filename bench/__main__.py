"""`python -m bench [--quick] [--json]`: speed and memory of the engine and the server, beside the targets and
beside the alternatives measured in the same run. See bench/run.py."""

import sys

from .run import main

sys.exit(main())
