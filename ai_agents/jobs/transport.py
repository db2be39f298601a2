"""The Redis side of the job queue: priority streams, one consumer group, results cache.

Streams carry only job ids (``job=<uuid>``); the ``jobs`` table is the record. Keys (all
in :mod:`ai_agents.keys`):

- ``jobs:agent_runs:{high,normal,low}``: one stream per priority, consumer group
  ``workers``. An entry is acknowledged *and deleted* once its job is finished, so the
  streams hold only work still to do (never trimmed by length, which could drop work).
- ``jobs:agent_runs:delayed``: sorted set of ``"<priority>:<job id>"`` waiting out a
  retry backoff, scored by due time (Redis server clock); workers move due ones back.
- ``jobs:agent_runs:dead``: the dead-letter stream (job, thread, attempts, error).
- ``jobs:results:{job_id}``: the finished :class:`JobRecord` as JSON, with a TTL.
- ``jobs:done``: pub/sub channel of finished job ids (wakes ``get_result`` waiters).
- ``jobs:cancel:{job_id}``: set while a cancel of a running job is pending.
- ``jobs:transport``: set by workers; missing means Redis lost its data (restart
  without persistence, flush) and the queue must be rebuilt from PostgreSQL.

The scripts need every key of one call on one Redis node: on a Redis Cluster, all these
keys share the hash tag ``{<prefix>jobs}`` (see :mod:`ai_agents.keys`). Several changes
that must happen together (finish, requeue, drop) are Lua scripts rather than
``MULTI`` transactions, which redis-py's cluster client does not offer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.tables import PRIORITIES, Priority
from ai_agents.keys import RedisKeys
from ai_agents.redis_client import replication_id

log = logging.getLogger("ai_agents.jobs")

GROUP = "workers"
_JOB = b"job"
#: Dead letters kept in Redis (approximately); every failed job is also in PostgreSQL.
DEAD_LETTER_MAXLEN = 100_000

# Non-blocking read of the first stream (in the caller's preference order) with entries
# never delivered to the group: one round trip whatever the order.
_READ = """
for i = 1, #KEYS do
  local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[3],
                         'STREAMS', KEYS[i], '>')
  if res and res[1] and #res[1][2] > 0 then return {i, res[1][2]} end
end
return false
"""

# Move due retries from the delayed set back to their stream (server clock, atomic).
_PROMOTE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local streams = {high = KEYS[2], normal = KEYS[3], low = KEYS[4]}
for _, member in ipairs(due) do
  local sep = string.find(member, ':', 1, true)
  redis.call('XADD', streams[string.sub(member, 1, sep - 1)], '*', 'job',
             string.sub(member, sep + 1))
  redis.call('ZREM', KEYS[1], member)
end
return #due
"""

# Schedule a retry after ARGV[4] ms (server clock) and drop the current delivery.
_RETRY = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[3])
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
return 1
"""


# Hand entries back: KEYS are streams, ARGV[1] the group, then per key (entry id, job id).
_REQUEUE = """
for i = 1, #KEYS do
  redis.call('XADD', KEYS[i], '*', 'job', ARGV[2 * i + 1])
  redis.pcall('XACK', KEYS[i], ARGV[1], ARGV[2 * i])
  redis.pcall('XDEL', KEYS[i], ARGV[2 * i])
end
return #KEYS
"""

# Acknowledge and delete one entry: KEYS[1] stream, ARGV group, entry id.
_DROP = """
redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.pcall('XDEL', KEYS[1], ARGV[2])
return 1
"""

# (Acknowledging with pcall: as with a pipeline, an entry or group Redis lost is no
# reason to leave the rest undone.)
# Finish a job. KEYS: result, cancel flag, dead-letter stream, next job's stream (or the
# result key again when none), delivery stream (or the result key again when none).
# ARGV: result JSON, TTL s, done channel, job id, next job id ('' = none), group, entry
# id ('' = none), dead-letter max length ('' = no dead letter), then dead-letter fields.
_FINISH = """
if ARGV[5] ~= '' then redis.call('XADD', KEYS[4], '*', 'job', ARGV[5]) end
redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
if ARGV[8] ~= '' then
  local fields = {}
  for i = 9, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], '*', unpack(fields))
end
if ARGV[7] ~= '' then
  redis.pcall('XACK', KEYS[5], ARGV[6], ARGV[7])
  redis.pcall('XDEL', KEYS[5], ARGV[7])
end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One stream entry handed to a worker: it stays pending until acknowledged."""

    priority: Priority
    stream: str
    entry_id: bytes
    job_id: UUID


def weighted_preferences(weights: Sequence[int]) -> Iterator[tuple[Priority, ...]]:
    """Endless stream-preference orders, ``weights`` apart (smooth weighted round robin).

    With 6:3:1, every 10 reads start 6 times at ``high``, 3 at ``normal`` and once at
    ``low``; an empty first choice falls through to the others in priority order, so
    low-priority work always gets a share and no worker idles while work exists.
    """
    current = [0] * len(PRIORITIES)
    total = sum(weights)
    while True:
        for i, weight in enumerate(weights):
            current[i] += weight
        first = max(range(len(PRIORITIES)), key=lambda i: current[i])
        current[first] -= total
        rest = [p for i, p in enumerate(PRIORITIES) if i != first]
        yield cast(tuple[Priority, ...], (PRIORITIES[first], *rest))


def is_nogroup(exc: ResponseError) -> bool:
    return "NOGROUP" in str(exc)


class StreamTransport:
    """Publishes, delivers, acknowledges and caches jobs on Redis (no job logic here)."""

    def __init__(self, redis: Redis, keys: RedisKeys, *, result_ttl: float) -> None:
        self.redis = redis
        self.keys = keys
        self.result_ttl = max(1, int(result_ttl))
        self.streams: dict[Priority, str] = {p: keys.job_stream(p) for p in PRIORITIES}  # type: ignore[misc]
        self._priority_of = {v: k for k, v in self.streams.items()}
        self._read = redis.register_script(_READ)
        self._promote = redis.register_script(_PROMOTE)
        self._retry = redis.register_script(_RETRY)
        self._requeue = redis.register_script(_REQUEUE)
        self._drop = redis.register_script(_DROP)
        self._finish = redis.register_script(_FINISH)
        self._malformed: list[tuple[str, bytes]] = []

    # --- producing ---------------------------------------------------------------------

    async def publish(self, job_id: UUID, priority: Priority) -> None:
        await self.redis.xadd(self.streams[priority], {_JOB: str(job_id)})

    async def ensure_groups(self) -> None:
        for stream in self.streams.values():
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    # --- consuming ---------------------------------------------------------------------

    def _deliveries(self, stream: str, entries: Any) -> list[Delivery]:
        out = []
        priority = self._priority_of[stream]
        for entry_id, fields in entries or ():
            if entry_id is None:  # deleted while pending (XAUTOCLAIM before Redis 7)
                continue
            if isinstance(fields, list):  # raw script reply: [field, value, ...]
                fields = dict(zip(fields[::2], fields[1::2], strict=True))
            try:
                job_id = UUID(fields[_JOB].decode())
            except (KeyError, ValueError, AttributeError):
                log.error("dropping malformed job entry %r on %s: %r", entry_id, stream, fields)
                self._malformed.append((stream, entry_id))
                continue
            out.append(Delivery(priority, stream, entry_id, job_id))
        return out

    async def _delivered(self, stream: str, entries: Any) -> list[Delivery]:
        """Deliveries of entries handed to this worker; malformed ones are dropped for good."""
        out = self._deliveries(stream, entries)
        while self._malformed:
            bad_stream, entry_id = self._malformed.pop()
            await self.redis.xack(bad_stream, GROUP, entry_id)
            await self.redis.xdel(bad_stream, entry_id)
        return out

    async def read(
        self, consumer: str, count: int, preference: Sequence[Priority]
    ) -> list[Delivery]:
        """Up to *count* new entries from the first non-empty stream in *preference*."""
        keys = [self.streams[p] for p in preference]
        reply = await self._read(keys=keys, args=[GROUP, consumer, count])
        if not reply:
            return []
        index, entries = reply
        return await self._delivered(keys[int(index) - 1], entries)

    async def read_blocking(self, consumer: str, block_ms: int) -> list[Delivery]:
        """Wait up to *block_ms* for a new entry on any stream (one per stream at most)."""
        reply = await self.redis.xreadgroup(
            GROUP,
            consumer,
            dict.fromkeys(self.streams.values(), ">"),
            count=1,
            block=block_ms,
        )
        out: list[Delivery] = []
        for stream, entries in reply or ():
            out += await self._delivered(stream.decode(), entries)
        return out

    async def reclaim(
        self, consumer: str, count: int, min_idle_ms: int, cursors: dict[str, bytes]
    ) -> list[Delivery]:
        """Take over entries idle for *min_idle_ms* (their worker died or hung)."""
        out: list[Delivery] = []
        for stream in self.streams.values():
            if len(out) >= count:
                break
            reply = await self.redis.xautoclaim(
                stream,
                GROUP,
                consumer,
                min_idle_ms,
                start_id=cursors.get(stream, b"0-0"),
                count=count - len(out),
            )
            cursors[stream] = reply[0]
            out += await self._delivered(stream, reply[1])
            if len(reply) > 2 and reply[2]:
                log.error("job entries deleted while pending on %s: %r", stream, reply[2])
        return out

    async def touch(self, consumer: str, deliveries: Sequence[Delivery]) -> None:
        """Reset the idle time of entries this worker still holds (its heartbeat)."""
        by_stream: dict[str, list[Any]] = {}
        for d in deliveries:
            by_stream.setdefault(d.stream, []).append(d.entry_id)
        if not by_stream:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream, ids in by_stream.items():
                pipe.xclaim(stream, GROUP, consumer, 0, ids, justid=True)
            await pipe.execute(raise_on_error=False)

    async def promote_due(self, limit: int = 500) -> int:
        keys = [self.keys.job_delayed, *self.streams.values()]
        return int(await self._promote(keys=keys, args=[limit]))

    async def schedule_retry(self, delivery: Delivery, delay: float) -> None:
        await self._retry(
            keys=[self.keys.job_delayed, delivery.stream],
            args=[
                GROUP,
                delivery.entry_id,
                f"{delivery.priority}:{delivery.job_id}",
                int(delay * 1000),
            ],
        )

    async def requeue(self, deliveries: Sequence[Delivery]) -> None:
        """Hand entries back: re-add them for any worker, drop this worker's copies."""
        if not deliveries:
            return
        args: list[Any] = [GROUP]
        for d in deliveries:
            args += [d.entry_id, str(d.job_id)]
        await self._requeue(keys=[d.stream for d in deliveries], args=args)

    async def drop(self, delivery: Delivery) -> None:
        """Acknowledge and delete an entry whose job needs nothing more."""
        await self._drop(keys=[delivery.stream], args=[GROUP, delivery.entry_id])

    async def finish(
        self,
        record: JobRecord,
        delivery: Delivery | None,
        *,
        dead_letter: bool = False,
        next_job: tuple[UUID, Priority] | None = None,
    ) -> None:
        """Cache the finished record, dead-letter it if asked, publish the thread's next
        job, acknowledge the entry and announce the result: one transaction."""
        result_key = self.keys.job_result(str(record.id))
        dead: list[str] = []
        if dead_letter:
            error = record.error
            fields = {
                "job": str(record.id),
                "tenant": record.tenant_id,
                "thread": str(record.thread_id),
                "priority": record.priority,
                "attempts": str(record.attempts),
                "code": error.code if error else "",
                "message": error.message if error else "",
                "failed_at": record.finished_at.isoformat() if record.finished_at else "",
            }
            dead = [str(DEAD_LETTER_MAXLEN)] + [x for kv in fields.items() for x in kv]
        keys = [
            result_key,
            self.keys.job_cancel(str(record.id)),
            self.keys.job_dead_letter,
            self.streams[next_job[1]] if next_job is not None else result_key,
            delivery.stream if delivery is not None else result_key,
        ]
        args: list[Any] = [
            json.dumps(record.to_json()),
            self.result_ttl,
            self.keys.job_done_channel,
            str(record.id),
            str(next_job[0]) if next_job is not None else "",
            GROUP,
            delivery.entry_id if delivery is not None else "",
            *(dead or [""]),
        ]
        try:
            await self._finish(keys=keys, args=args)
        except ResponseError as exc:
            log.warning("job %s: finishing on Redis partly failed: %s", record.id, exc)

    # --- results and cancel flags -----------------------------------------------------

    async def cached(self, job_id: UUID) -> JobRecord | None:
        raw = await self.redis.get(self.keys.job_result(str(job_id)))
        return JobRecord.from_json(json.loads(raw)) if raw else None

    async def flag_cancel(self, job_id: UUID) -> None:
        await self.redis.set(self.keys.job_cancel(str(job_id)), b"1", ex=self.result_ttl)

    async def cancel_flagged(self, job_id: UUID) -> bool:
        return bool(await self.redis.exists(self.keys.job_cancel(str(job_id))))

    # --- maintenance ------------------------------------------------------------------

    async def claim_rebuild(self, worker: str) -> bool:
        """True for the one worker that must rebuild the queue (the marker was missing)."""
        return bool(await self.redis.set(self.keys.job_transport_marker, worker, nx=True))

    async def server_identity(self) -> str:
        """The replication id of the server holding the job keys (changes on a failover);
        empty when the server refuses ``INFO`` (an ACL without it: no failover detection)."""
        try:
            return await replication_id(self.redis, self.keys.job_transport_marker)
        except ResponseError:
            return ""

    async def release_rebuild(self) -> None:
        await self.redis.delete(self.keys.job_transport_marker)

    async def queued_job_ids(self) -> set[UUID]:
        """Every job id present in the streams or the delayed set."""
        ids: set[UUID] = set()
        for stream in self.streams.values():
            start = "-"
            while True:
                entries = await self.redis.xrange(stream, min=start, count=1000)
                ids.update(d.job_id for d in self._deliveries(stream, entries))
                if len(entries) < 1000:
                    break
                start = "(" + entries[-1][0].decode()
        for member in await self.redis.zrange(self.keys.job_delayed, 0, -1):
            ids.add(UUID(member.decode().partition(":")[2]))
        return ids

    async def idle(self) -> bool:
        """Nothing pending in the group and nothing waiting out a backoff."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for stream in self.streams.values():
                pipe.xpending(stream, GROUP)
            pipe.zcard(self.keys.job_delayed)
            *pending, delayed = await pipe.execute()
        return delayed == 0 and all(p["pending"] == 0 for p in pending)

    async def leave(self, consumer: str) -> None:
        """Remove this worker from the group when it holds nothing (keeps XINFO tidy)."""
        for stream in self.streams.values():
            mine = await self.redis.xpending_range(
                stream, GROUP, min="-", max="+", count=1, consumername=consumer
            )
            if not mine:
                await self.redis.xgroup_delconsumer(stream, GROUP, consumer)

    async def dead_letters(self, count: int) -> list[dict[str, str]]:
        entries = await self.redis.xrevrange(self.keys.job_dead_letter, count=count)
        return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]
