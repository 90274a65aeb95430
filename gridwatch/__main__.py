"""Entry point of ``python -m gridwatch``."""

import sys

from gridwatch.cli import main

sys.exit(main())
