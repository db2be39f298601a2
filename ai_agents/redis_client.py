"""Every Redis client the platform makes: one server, or a Redis Cluster.

``redis://`` and ``rediss://`` (and ``unix://``) URLs give redis-py's asyncio ``Redis``.
``redis+cluster://host:port[/0]`` (``rediss+cluster://`` for TLS) gives its asyncio
``RedisCluster``: the host is any node of the cluster (the others are discovered), the
database must be 0. Both are typed as ``Redis``: the commands the platform uses exist on
both (the cluster client routes each to the node owning its key's slot, and refuses keys
of one command or script that are not on one slot; see :mod:`ai_agents.keys` for the
hash tags that keep them together).

redis-py's asyncio cluster client has no pub/sub: :func:`pubsub` opens a plain
connection to the primary that owns the first channel's slot, which is also where
``PUBLISH`` of that channel is routed (so its receiver count counts these subscribers;
cluster ``PUBLISH`` reaches every node's subscribers anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException

from ai_agents.errors import ConfigurationError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.asyncio.client import PubSub

__all__ = [
    "cluster_url",
    "connect",
    "is_cluster",
    "keyslot",
    "publish",
    "pubsub",
    "replication_id",
    "subscribers",
]

_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PLAIN_SCHEMES = {"redis", "rediss", "unix"}


def cluster_url(url: str) -> str | None:
    """The ``redis://`` URL for ``RedisCluster.from_url`` if *url* selects cluster mode.

    ``None`` for a one-server URL; :class:`ConfigurationError` for an unknown scheme or a
    cluster URL naming a database other than 0 (a cluster has only database 0).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in _PLAIN_SCHEMES:
        return None
    if scheme not in _CLUSTER_SCHEMES:
        known = ", ".join(f"{s}://" for s in sorted(_PLAIN_SCHEMES | set(_CLUSTER_SCHEMES)))
        raise ConfigurationError(
            f"unsupported Redis URL scheme {parts.scheme + '://'!r} (expected one of {known})",
            details={"field": "redis_url"},
        )
    if not parts.hostname:
        raise ConfigurationError(
            "a Redis Cluster URL needs a host: redis+cluster://host:port",
            details={"field": "redis_url"},
        )
    db = parts.path.strip("/")
    if db not in ("", "0"):
        raise ConfigurationError(
            f"a Redis Cluster has only database 0, the URL names database {db!r}",
            details={"field": "redis_url"},
        )
    return urlunsplit((_CLUSTER_SCHEMES[scheme], parts.netloc, "", parts.query, ""))


class _Cluster(RedisCluster):
    """``RedisCluster`` whose failure to reach any node is a ``ConnectionError``.

    redis-py raises ``RedisClusterException`` (not a ``RedisError``) when no startup node
    answers; every ``except (RedisError, OSError)`` of the platform (fail-open limiter,
    health checks, announcements) expects a connection error there, as on one server.
    """

    async def initialize(self) -> _Cluster:
        try:
            await super().initialize()
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc
        return self

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().execute_command(*args, **kwargs)
        except RedisClusterException as exc:
            if _unreachable(exc):  # every node gone while it ran, or a slot unserved
                raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc
            raise  # e.g. keys of one command on several slots: a bug, not an outage


def _unreachable(exc: RedisClusterException) -> bool:
    from redis.exceptions import SlotNotCoveredError

    text = str(exc)
    return isinstance(exc, SlotNotCoveredError) or (
        "cannot be connected" in text or "slots are not covered" in text
    )


def connect(url: str, **kwargs: Any) -> Redis:
    """A client for *url* (see the module docstring); *kwargs* go to ``from_url``."""
    target = cluster_url(url)
    if target is None:
        from redis.asyncio import Redis

        return cast("Redis", Redis.from_url(url, **kwargs))
    # Typed as Redis: the platform uses only commands both clients have.
    return cast("Redis", _Cluster.from_url(target, **kwargs))


def is_cluster(client: object) -> bool:
    return isinstance(client, RedisCluster)


def keyslot(key: str) -> int:
    """The cluster slot of *key* (CRC16 of its hash tag, or of the whole key)."""
    from redis.crc import key_slot

    return int(key_slot(key.encode()))


async def pubsub(
    client: Redis, channels: list[str], *, refresh: bool = False, **kwargs: Any
) -> PubSub:
    """A pub/sub object for *channels* (not yet subscribed) on *client*'s server.

    On a cluster: on a new one-node connection to the primary owning the first
    channel's slot (its ``aclose`` closes that connection's client too); *refresh*
    re-reads the cluster's topology first (the last subscription failed: its node may be
    gone, replaced by a promoted replica).
    """
    if not is_cluster(client):
        return client.pubsub(**kwargs)
    from redis.asyncio import Redis

    cluster = cast(RedisCluster, client)
    await cluster.initialize()  # (a no-op once the topology is known)
    if refresh:
        try:
            await cluster.nodes_manager.initialize()
        except RedisClusterException as exc:
            raise RedisConnectionError(f"Redis Cluster unreachable: {exc}") from exc
    node = cluster.get_node_from_key(channels[0]) if channels else None
    node = node or cluster.get_random_node()
    from redis.asyncio.connection import ConnectionPool

    # What the cluster gives each node's connections, for one connection of our own.
    options: dict[str, Any] = dict(cluster.get_connection_kwargs())
    for name in ("parser_class", "response_callbacks", "max_connections"):
        options.pop(name, None)
    one = Redis.from_pool(ConnectionPool(host=node.host, port=node.port, **options))
    result = one.pubsub(**kwargs)
    original = result.aclose

    async def aclose() -> None:
        try:
            await original()  # type: ignore[no-untyped-call]
        finally:
            await one.aclose()

    result.aclose = aclose  # type: ignore[method-assign]
    return result


async def publish(client: Redis, channel: str, message: str) -> int:
    """``PUBLISH`` (redis-py's cluster client has no ``publish``: sent to the node owning
    the channel's slot, where :func:`pubsub` subscribes); returns the receivers there."""
    if is_cluster(client):
        return int(await client.execute_command("PUBLISH", channel, message))  # type: ignore[no-untyped-call]
    return int(await client.publish(channel, message))


async def replication_id(client: Redis, key: str) -> str:
    """The replication id of the server holding *key* (a cluster: the primary of its slot).

    It changes when a replica is promoted or the server restarts without its data, which
    is when the last acknowledged writes may be gone.
    """
    if is_cluster(client):
        cluster = cast(RedisCluster, client)
        await cluster.initialize()
        node = cluster.get_node_from_key(key)
        info: Any = await client.execute_command(  # type: ignore[no-untyped-call]
            "INFO", "replication", target_nodes=node
        )
        if isinstance(info, dict) and "master_replid" not in info and len(info) == 1:
            info = next(iter(info.values()))
    else:
        info = await client.info("replication")
    return str(info.get("master_replid", "")) if isinstance(info, dict) else ""


async def subscribers(client: Redis, channel: str) -> int:
    """How many connections subscribe to *channel* where :func:`publish` sends it."""
    if is_cluster(client):
        cluster = cast(RedisCluster, client)
        await cluster.initialize()
        reply: Any = await client.execute_command(  # type: ignore[no-untyped-call]
            "PUBSUB NUMSUB", channel, target_nodes=cluster.get_node_from_key(channel)
        )
    else:
        reply = await client.pubsub_numsub(channel)
    return sum(int(n) for _name, n in reply)
