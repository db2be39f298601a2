"""Issue 2, acceptance 6: reading the last 50 messages does not grow with thread length.

Prints the median time of ``store.last_messages(thread, 50)`` on threads of 100 and
100,000 messages, and the query plan (one backward index range scan).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import bench_database, median_ms  # noqa: E402
from sqlalchemy import text  # noqa: E402

from ai_agents import AgentDefinition, AgentStore  # noqa: E402

SIZES = (100, 100_000)


async def main(url: str) -> None:
    async with AgentStore(database_url=url) as store:
        agent = await store.create_agent(
            AgentDefinition(name="bench", role="bench"), provider="openai", model="gpt-4o"
        )
        threads = {}
        for size in SIZES:
            thread_id = await store.create_thread(agent)
            async with store.engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO messages (thread_id, seq, role, content, byte_size) "
                        "SELECT :t, g, CASE WHEN g % 2 = 1 THEN 'user' ELSE 'assistant' END, "
                        "'message number ' || g, 20 FROM generate_series(1, :n) g"
                    ),
                    {"t": thread_id, "n": size},
                )
                await conn.execute(
                    text("UPDATE threads SET last_seq = :n, message_count = :m WHERE id = :t"),
                    {"t": thread_id, "n": size, "m": size},
                )
            threads[size] = thread_id
        async with store.engine.begin() as conn:
            await conn.execute(text("ANALYZE messages"))
            plan = (
                (
                    await conn.execute(
                        text(
                            "EXPLAIN ANALYZE SELECT * FROM messages WHERE thread_id = :t "
                            "ORDER BY seq DESC LIMIT 50"
                        ),
                        {"t": threads[SIZES[-1]]},
                    )
                )
                .scalars()
                .all()
            )
        print("plan for the last 50 of", f"{SIZES[-1]:,}", "messages:")
        for line in plan:
            print("   ", line)
        results = {}
        for size, thread_id in threads.items():
            results[size] = await median_ms(
                lambda t=thread_id: store.last_messages(t, 50), repeat=300, warmup=20
            )
        print(f"{'messages in thread':>20} {'median last_messages(50)':>26}")
        for size, ms in results.items():
            print(f"{size:>20,} {ms:>23.3f} ms")
        ratio = results[SIZES[-1]] / results[SIZES[0]]
        print(f"ratio {SIZES[-1]:,} / {SIZES[0]}: {ratio:.2f}x")


if __name__ == "__main__":
    with bench_database() as url:
        asyncio.run(main(url))
