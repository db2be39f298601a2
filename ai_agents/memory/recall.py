"""Vector recall: older messages most similar to the new input.

Embeddings are computed once per message (lazily, the first time a vector-memory run
needs them, in batches) and stored in ``message_embeddings``. Only user messages and
plain assistant answers are embedded, so a recalled message never carries a tool call
without its result. Similarity is computed in Python over the thread's stored vectors,
which is fine for threads up to tens of thousands of messages.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ai_agents.db import messages as message_rows
from ai_agents.db.engine import autocommit, translate_errors
from ai_agents.db.tables import message_embeddings, messages
from ai_agents.embeddings import Embedder, cosine
from ai_agents.messages import Message
from ai_agents.records import ThreadRecord

EMBED_BATCH = 256


async def similar_messages(
    embedder: Embedder,
    engine: AsyncEngine,
    thread: ThreadRecord,
    text: str,
    before_seq: int,
    k: int,
) -> list[Message]:
    """Each database step takes a connection and gives it back: none is held while the
    embedder computes vectors."""
    with translate_errors("vector recall"):
        async with autocommit(engine) as conn:
            missing = await _missing(conn, thread, before_seq, embedder.name)
    if missing:
        vectors = await embedder.embed([r.content for r in missing])
        with translate_errors("vector recall"):
            async with engine.begin() as conn:
                await _store(conn, thread, embedder.name, missing, vectors)
    with translate_errors("vector recall"):
        async with autocommit(engine) as conn:
            rows = (
                await conn.execute(
                    select(message_embeddings.c.seq, message_embeddings.c.embedding).where(
                        message_embeddings.c.thread_id == thread.id,
                        message_embeddings.c.embedder == embedder.name,
                        message_embeddings.c.seq < before_seq,
                    )
                )
            ).all()
    if not rows:
        return []
    (query,) = await embedder.embed([text])
    ranked = sorted(rows, key=lambda r: cosine(query, r.embedding), reverse=True)[:k]
    wanted = {r.seq for r in ranked}
    out: list[Message] = []
    with translate_errors("vector recall"):
        async with autocommit(engine) as conn:
            for seq in sorted(wanted):
                out.extend(await message_rows.between(conn, thread.id, seq - 1, seq + 1, 1))
    return out


async def _missing(
    conn: AsyncConnection, thread: ThreadRecord, before_seq: int, name: str
) -> list[Any]:
    """Messages older than *before_seq* without an embedding by *name* (newest first)."""
    result = await conn.execute(
        select(messages.c.id, messages.c.seq, messages.c.content)
        .select_from(
            messages.outerjoin(
                message_embeddings,
                and_(
                    message_embeddings.c.message_id == messages.c.id,
                    message_embeddings.c.embedder == name,
                ),
            )
        )
        .where(
            messages.c.thread_id == thread.id,
            messages.c.seq < before_seq,
            messages.c.role.in_(("user", "assistant")),
            messages.c.tool_calls.is_(None),
            messages.c.content.is_not(None),
            messages.c.content != "",
            message_embeddings.c.message_id.is_(None),
        )
        .order_by(messages.c.seq.desc())
        .limit(EMBED_BATCH)
    )
    return list(result.all())


async def _store(
    conn: AsyncConnection,
    thread: ThreadRecord,
    name: str,
    missing: list[Any],
    vectors: list[list[float]],
) -> None:
    await conn.execute(
        pg_insert(message_embeddings)
        .values(
            [
                {
                    "message_id": r.id,
                    "embedder": name,
                    "thread_id": thread.id,
                    "seq": r.seq,
                    "embedding": vec,
                }
                for r, vec in zip(missing, vectors, strict=True)
            ]
        )
        .on_conflict_do_nothing()
    )
