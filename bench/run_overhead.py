"""Issue 5, acceptance 4: the cost of one ``store.run`` turn versus the OpenAI Agents SDK.

Both sides talk to the same instant OpenAI-compatible server (its own process, over
loopback HTTP) and the same PostgreSQL; memory is "the last 50 messages" on both
(``last_messages`` with max_messages=50 / ``SQLAlchemySession`` with limit 50). For
threads of 10, 1,000, 10,000 and 100,000 prior messages it prints the median time of
a turn for ours and for the SDK's ``Runner.run``, measured in the same run.

Targets: ours <= 0.33x the SDK at every size; ours at 100,000 <= 1.2x ours at 10.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REDIS_URL, bench_database, median_ms  # noqa: E402
from sqlalchemy import text  # noqa: E402

from ai_agents import AgentDefinition, AgentStore, Settings  # noqa: E402
from ai_agents.ratelimit.limiter import RateLimits  # noqa: E402

SIZES = (10, 1_000, 10_000, 100_000)
REPEAT = int(os.environ.get("BENCH_REPEAT", "100"))
HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _prefill_ours(store: AgentStore, thread_id: object, n: int) -> None:
    async with store.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO messages (thread_id, seq, role, content, byte_size, token_count) "
                "SELECT :t, g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, "
                "'Earlier message number ' || g || ' about the booking.', 40, 12 "
                "FROM generate_series(1, :n) g"
            ),
            {"t": thread_id, "n": n},
        )
        await conn.execute(
            text(
                "UPDATE threads SET last_seq = :n, message_count = :m, total_bytes = :b "
                "WHERE id = :t"
            ),
            {"t": thread_id, "n": n, "m": n, "b": 40 * n},
        )


async def bench_ours(url: str, base_url: str) -> dict[int, float]:
    os.environ["OPENAI_BASE_URL"] = base_url
    os.environ["OPENAI_API_KEY"] = "bench"
    settings = Settings(database_url=url, redis_url=REDIS_URL, redis_prefix="bench:run:")
    results = {}
    async with AgentStore(settings=settings) as store:
        store.runner.rate_limit_overrides[("openai", "gpt-4o")] = RateLimits(
            rpm=10_000_000, tpm=10_000_000_000
        )
        agent = await store.create_agent(
            AgentDefinition(name="Bench", role="You answer questions about bookings."),
            provider="openai",
            model="gpt-4o",
            memory_strategy="last_messages",
            memory_config={"max_messages": 50},
        )
        for size in SIZES:
            thread_id = await store.create_thread(agent, user_id="bench")
            await _prefill_ours(store, thread_id, size)
            async with store.engine.begin() as conn:
                await conn.execute(text("ANALYZE messages"))
            results[size] = await median_ms(
                lambda t=thread_id: store.run(t, "What's the checkout time?"),
                repeat=REPEAT,
                warmup=10,
            )
        await store.redis.delete(*[k async for k in store.redis.scan_iter("bench:run:*")] or ["_"])
    return results


async def bench_sdk(url: str, base_url: str) -> dict[int, float]:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, set_tracing_disabled
    from agents.extensions.memory.sqlalchemy_session import SQLAlchemySession
    from agents.memory.session_settings import SessionSettings
    from openai import AsyncOpenAI
    from sqlalchemy.ext.asyncio import create_async_engine

    set_tracing_disabled(True)
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    agent = Agent(
        name="Bench",
        instructions="You answer questions about bookings.",
        model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
    )
    engine = create_async_engine(url.replace("postgresql://", "postgresql+asyncpg://"))
    results = {}
    try:
        for size in SIZES:
            session_id = f"bench-{size}"
            session = SQLAlchemySession(
                session_id,
                engine=engine,
                create_tables=True,
                session_settings=SessionSettings(limit=50),
            )
            await session.add_items([{"role": "user", "content": "start"}])
            async with engine.begin() as conn:
                user = json.dumps({"role": "user", "content": "Earlier message about the booking."})
                answer = json.dumps(
                    {"role": "assistant", "content": "Earlier answer about the booking."}
                )
                await conn.execute(
                    text(
                        "INSERT INTO agent_messages (session_id, message_data) "
                        "SELECT :s, CASE WHEN g % 2 = 1 THEN :u ELSE :a END "
                        "FROM generate_series(1, :n) g"
                    ),
                    {"s": session_id, "u": user, "a": answer, "n": size - 1},
                )
                await conn.execute(text("ANALYZE agent_messages"))
            results[size] = await median_ms(
                lambda s=session: Runner.run(agent, "What's the checkout time?", session=s),
                repeat=REPEAT,
                warmup=10,
            )
    finally:
        await engine.dispose()
        await client.close()
    return results


def main() -> None:
    port = _free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "_instant_openai.py"), str(port)])
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        import httpx

        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with bench_database() as url:
            ours = asyncio.run(bench_ours(url, base_url))
            sdk = asyncio.run(bench_sdk(url, base_url))
    finally:
        server.terminate()
        server.wait(timeout=10)
    print(f"median ms per turn (last 50 messages as context), {REPEAT} turns per size")
    print(f"{'prior messages':>15} {'ai_agents':>10} {'Agents SDK':>11} {'ratio':>7}")
    for size in SIZES:
        print(f"{size:>15,} {ours[size]:>10.2f} {sdk[size]:>11.2f} {ours[size] / sdk[size]:>6.2f}x")
    growth = ours[SIZES[-1]] / ours[SIZES[0]]
    worst = max(ours[s] / sdk[s] for s in SIZES)
    print(f"ours at {SIZES[-1]:,} / ours at {SIZES[0]}: {growth:.2f}x (target <= 1.2x)")
    print(f"worst ratio to the SDK: {worst:.2f}x (target <= 0.33x)")


if __name__ == "__main__":
    main()
