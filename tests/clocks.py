"""A clock the test controls, for code that takes a ``clock`` (and a ``sleep``).

``FakeClock()`` returns the current fake time in integer microseconds (the unit the rate
limiter's and the breaker's ``server_clock`` take); ``seconds()`` is the same time as a
float, for ``clock=`` parameters that count in seconds. Time only moves when the test
calls :meth:`advance` or when the code under test awaits :meth:`sleep`.
"""

from __future__ import annotations

import asyncio

#: 2023-11-14T22:13:20Z: far from 0, like a real epoch time, so nothing treats it as unset.
DEFAULT_START_US = 1_700_000_000_000_000


class FakeClock:
    """Microsecond time that moves only when told to."""

    def __init__(self, start_us: int = DEFAULT_START_US) -> None:
        self.now_us = start_us
        #: Every duration passed to :meth:`sleep`, in order.
        self.slept: list[float] = []

    def __call__(self) -> int:
        return self.now_us

    def seconds(self) -> float:
        return self.now_us / 1_000_000

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        self.now_us += round(seconds * 1_000_000)

    async def sleep(self, seconds: float) -> None:
        """An ``asyncio.sleep`` stand-in: time passes at once (other tasks still run)."""
        self.slept.append(seconds)
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
