"""A fresh process's warm-up imports the vendor SDKs and builds the tokenizers."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import sys
from ai_agents.tokens import _cached_encoding
from ai_agents.warmup import ADAPTER_MODULES, warm_up
before = [m for m in ADAPTER_MODULES if m in sys.modules], _cached_encoding.cache_info().currsize
warm_up()
after = [m for m in ADAPTER_MODULES if m in sys.modules], _cached_encoding.cache_info().currsize
print(before, after)
"""


def test_warm_up_loads_the_sdks_and_tokenizers_a_first_run_would_load() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=120
    )
    before, after = out.stdout.strip().split(") (")
    assert before == "([], 0"
    assert after == "['ai_agents.providers.openai', 'ai_agents.providers.anthropic'], 2)"


FREEZE_PROBE = """
import asyncio, gc
from ai_agents.warmup import start_warm_up

async def main():
    await start_warm_up()

asyncio.run(main())
young = sum(len(gc.get_objects(g)) for g in range(3))
print(gc.get_freeze_count(), young)
"""


def test_warm_up_takes_the_start_up_objects_out_of_the_collectors_reach() -> None:
    # A full collection after the warm-up walks only what was made since, not the SDKs,
    # tokenizers and the rest of the start-up heap.
    out = subprocess.run(
        [sys.executable, "-c", FREEZE_PROBE],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    frozen, young = (int(n) for n in out.stdout.split())
    assert frozen > 100_000
    assert young < frozen / 20
