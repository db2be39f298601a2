"""Runs that go on after their HTTP answer: OpenAI's create-run answers at once with the
run ``queued``/``in_progress`` and the client polls it.

The run's events (``store.stream`` or ``store.stream_tool_outputs``) are consumed by a
task of its own, kept in the app's ``run_tasks`` (cancelled at shutdown: the run then
ends ``cancelled`` and nothing of its turn is saved). The request waits only for the
first event, ``run_started``: from then on the run row exists and the runner records
whatever happens (completion, ``requires_action``, failure, cancel) on it, so a failure
after the answer is read from the run, not lost. A failure before it (a busy thread, an
inactive assistant) is the request's own error.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from uuid import UUID

from ai_agents.response import RunEvent, RunStartedEvent

log = logging.getLogger("api.compat.runs")


class _NotStarted(RuntimeError):
    """The events ended before ``run_started`` (never expected)."""


async def _consume(events: AsyncIterator[RunEvent], started: asyncio.Future[UUID]) -> None:
    try:
        async with aclosing(events) as stream:  # type: ignore[type-var]
            async for event in stream:
                if isinstance(event, RunStartedEvent) and not started.done():
                    started.set_result(event.run_id)
    except asyncio.CancelledError:
        if not started.done():
            started.cancel()
        raise
    except Exception as exc:
        if not started.done():
            started.set_exception(exc)
        else:  # recorded on the run row by the runner; the client reads it there
            log.info("background run ended with %s: %s", type(exc).__name__, exc)
    if not started.done():
        started.set_exception(_NotStarted("the run ended before it started"))


async def start_in_background(
    events: AsyncIterator[RunEvent], tasks: set[asyncio.Task[None]]
) -> UUID:
    """Consume *events* in a task of *tasks*; the run's id once it has started (or the
    error that kept it from starting).

    The request going away meanwhile does not stop the run: OpenAI's runs outlive the
    call that created them.
    """
    started: asyncio.Future[UUID] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(_consume(events, started))
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return await asyncio.shield(started)
