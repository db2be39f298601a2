"""A second process for the durable-runs tests (test_runs.py).

argv: database_url redis_url prefix lease_seconds command args...

- ``run THREAD_ID TEXT``: start a run whose model never answers (it sleeps); prints
  ``started`` once the model was called (the test then kills this process with -9).
- ``submit RUN_ID CALL_ID OUTPUT``: submit one tool output to a run in
  ``requires_action``; the model answers with the tool result it was given. Prints the
  response as JSON.
- ``cancel RUN_ID``: cancel the run from this process; prints its status.
"""

from __future__ import annotations

import asyncio
import json
import sys

from ai_agents import AgentStore, Settings
from ai_agents.providers.base import ProviderRequest, ProviderResponse
from ai_agents.testing import FunctionProvider


async def main() -> None:
    database_url, redis_url, prefix, lease, command, *args = sys.argv[1:]
    settings = Settings(
        database_url=database_url,
        redis_url=redis_url,
        redis_prefix=prefix,
        run_lease_seconds=float(lease),
    )

    async def sleeper(request: ProviderRequest) -> ProviderResponse:
        print("started", flush=True)
        await asyncio.sleep(3600)
        return ProviderResponse(content="never")

    def echo_tool_result(request: ProviderRequest) -> ProviderResponse:
        last = request.messages[-1]
        return ProviderResponse(content=f"The tool said: {last.content}")

    async with AgentStore(settings=settings) as store:
        if command == "run":
            store.register_provider("scripted", FunctionProvider(sleeper))
            await store.run(args[0], args[1])
        elif command == "submit":
            store.register_provider("scripted", FunctionProvider(echo_tool_result))
            response = await store.submit_tool_outputs(
                args[0], [{"tool_call_id": args[1], "output": args[2]}]
            )
            print(json.dumps(response.to_json()), flush=True)
        elif command == "cancel":
            print((await store.cancel_run(args[0])).status, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
