"""A process running concurrent runs on one thread (test_run_serialization.py).

argv: database_url redis_url prefix thread_id runs label

Prints ``ready`` once its store is open, waits for the test's go (one item pushed to
``{prefix}serial:go``), then starts *runs* runs on the thread at once, each with the
input ``"{label} {i}"``, and prints their answers as one JSON list. The model counts
its calls in flight in Redis (:class:`RedisInFlight`), together with the other process.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ai_agents import AgentStore, Settings
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.redis_client import connect
from ai_agents.testing import FunctionProvider
from tests.integration.serial_support import RedisInFlight

GO_SECONDS = 60
#: Below the test's own deadline, so a hang shows here, with this process's traceback.
RUNS_SECONDS = 40


async def main() -> int:
    database_url, redis_url, prefix, thread_id, runs, label = sys.argv[1:]
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    settings = Settings(database_url=database_url, redis_url=redis_url, redis_prefix=prefix)
    redis = connect(redis_url)
    try:
        async with AgentStore(settings=settings) as store:
            store.register_provider("scripted", FunctionProvider(RedisInFlight(redis, prefix)))
            print("ready", flush=True)
            if await redis.blpop([f"{prefix}serial:go"], timeout=GO_SECONDS) is None:
                print(f"no go within {GO_SECONDS}s", file=sys.stderr)
                return 3
            texts = [f"{label} {i}" for i in range(int(runs))]
            responses = await asyncio.wait_for(
                asyncio.gather(*(store.run(thread_id, t) for t in texts)), RUNS_SECONDS
            )
            print(json.dumps([r.content for r in responses]), flush=True)
    finally:
        await redis.aclose()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
