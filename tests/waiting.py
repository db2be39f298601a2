"""Polling with a deadline: a test that waits for a condition fails, never hangs."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def wait_until(
    condition: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.01,
    what: str,
) -> None:
    """Return once *condition* (sync or async) is true; fail after *timeout* seconds.

    Raises ``AssertionError("timed out after {timeout}s waiting for {what}")``.
    """
    clock = asyncio.get_running_loop()
    deadline = clock.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if clock.time() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
