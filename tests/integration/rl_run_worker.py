"""A process issuing store.run calls as fast as the rate limiter admits them.

Used by test_rate_limits_across_processes.py: argv = database_url redis_url prefix
thread_id model go_epoch deadline_epoch. Prints one line per admitted provider call:
``<epoch seconds> <tokens>``.
"""

from __future__ import annotations

import asyncio
import sys
import time

from ai_agents import AgentStore, Settings
from ai_agents.providers.base import ProviderRequest, ProviderResponse, Usage
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.testing import FunctionProvider
from ai_agents.tokens import default_counter


def limits_for(model: str) -> ModelLimits:
    if model == "rpm-model":
        return ModelLimits(4000, 10, 60, 999_999_999, True, False, 0, 0)
    return ModelLimits(4000, 10, 999_999, 1200, True, False, 0, 0)


async def main() -> None:
    database_url, redis_url, prefix, thread_id, model, go, deadline = sys.argv[1:8]
    get_registry().register("scripted", model, limits_for(model))
    counter = default_counter()

    def answer(request: ProviderRequest) -> ProviderResponse:
        tokens = counter.count_request(
            request.system_prompt, request.messages, request.tools, provider="scripted", model=model
        )
        # Usage exactly equal to the runner's estimate (input + max_output), so the
        # window holds what was reserved and the TPM check is exact.
        print(f"{time.time():.6f} {tokens + 10}", flush=True)
        return ProviderResponse(content="ok", usage=Usage(tokens, 10))

    settings = Settings(
        database_url=database_url, redis_url=redis_url, redis_prefix=prefix, rate_limit_window=3.0
    )
    async with AgentStore(settings=settings) as store:
        store.register_provider("scripted", FunctionProvider(answer))
        await asyncio.sleep(max(0.0, float(go) - time.time()))
        while time.time() < float(deadline):
            await store.run(thread_id, "hello")


if __name__ == "__main__":
    asyncio.run(main())
