"""``python -m workers [options]``: the same as ``ai-agents worker [options]``."""

import sys

from workers.cli import main

sys.exit(main())
