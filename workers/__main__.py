"""``python -m workers [options]`` from a checkout: ``ai-agents worker [options]``."""

import sys

from ai_agents.workers.cli import main

sys.exit(main())
