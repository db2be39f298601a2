"""``python -m ai_agents.workers [options]``: the same as ``ai-agents worker [options]``."""

import sys

from ai_agents.workers.cli import main

sys.exit(main())
