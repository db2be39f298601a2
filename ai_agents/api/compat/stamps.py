"""Unix seconds, as OpenAI's objects carry their timestamps."""

from __future__ import annotations

import time
from datetime import datetime


def unix(moment: datetime | None) -> int:
    """*moment* in whole seconds since the epoch (now, for a moment not yet recorded)."""
    return int(moment.timestamp()) if moment is not None else int(time.time())


def unix_or_none(moment: datetime | None) -> int | None:
    return int(moment.timestamp()) if moment is not None else None
