"""Load at process start what a process's first run would otherwise load on its loop.

The first run in a fresh API or worker process imported the vendor SDK (about 3.5 s for
``openai`` on a busy 2-core machine) and built the tokenizers (about 2.4 s each), both
on the event loop: every request or job of that process waited, and a scale-up event
showed as a burst of slow first answers (``bench/load.py`` measured 16-27 s for the first
ten jobs of a worker). :func:`start_warm_up` does both in a thread as the process starts;
a run that needs them before they are ready waits only for the rest.

Then it takes what the process built so far out of the cyclic garbage collector's
reach (:func:`freeze_start_up_objects`): the SDKs, tokenizers, SQLAlchemy metadata and
the rest live as long as the process, and every full collection walked all of them
(about 280,000 objects: 220 ms per full collection on the 2-core bench machine, with
the event loop stopped).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import logging

from ai_agents.tokens import CL100K_BASE, O200K_BASE, get_encoding

log = logging.getLogger("ai_agents.warmup")

#: Adapter modules whose SDK import is the slow part (skipped when the extra is missing).
ADAPTER_MODULES = ("ai_agents.providers.openai", "ai_agents.providers.anthropic")
ENCODINGS = (O200K_BASE, CL100K_BASE)


def warm_up() -> None:
    """Import the vendor SDKs and build the tokenizers (blocking: run it in a thread)."""
    for module in ADAPTER_MODULES:
        try:
            importlib.import_module(module)
        except ImportError:  # that provider's extra is not installed
            continue
    for name in ENCODINGS:
        try:
            get_encoding(name)
        except Exception as exc:  # the first run reports it, with its context
            log.warning("could not build the %s tokenizer at start: %s", name, exc)


def freeze_start_up_objects() -> None:
    """Collect the start-up garbage, then move every object left to the permanent
    generation, which collections do not walk (``gc.freeze``). Objects made later are
    collected as usual; a frozen object that becomes garbage is freed by its reference
    count, or kept if it is in a cycle (what start-up built is not let go of)."""
    gc.collect()
    gc.freeze()


def _warm_up_and_freeze() -> None:
    warm_up()
    freeze_start_up_objects()


def start_warm_up() -> asyncio.Task[None]:
    """:func:`warm_up` then :func:`freeze_start_up_objects` in a thread, started now; the
    caller keeps the task (or cancels it)."""
    return asyncio.get_running_loop().create_task(asyncio.to_thread(_warm_up_and_freeze))
