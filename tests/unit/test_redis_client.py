"""Redis URLs: one server or a cluster (``redis+cluster://``), and the key hash tags."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ai_agents.errors import ConfigurationError
from ai_agents.keys import RedisKeys
from ai_agents.redis_client import cluster_url, connect, is_cluster, keyslot


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://h:6379/0", None),
        ("rediss://h:6379/2", None),
        ("unix:///tmp/redis.sock", None),
        ("redis+cluster://h:7000", "redis://h:7000"),
        ("redis+cluster://h:7000/0", "redis://h:7000"),
        ("redis+cluster://:pw@h:7000/", "redis://:pw@h:7000"),
        ("rediss+cluster://h:7000/0?ssl_cert_reqs=none", "rediss://h:7000?ssl_cert_reqs=none"),
    ],
)
def test_cluster_url(url: str, expected: str | None) -> None:
    assert cluster_url(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://h:7000/1", "only database 0"),
        ("http://h:6379", "unsupported Redis URL scheme"),
        ("redis+sentinel://h:26379", "unsupported Redis URL scheme"),
        ("redis+cluster:///0", "needs a host"),
    ],
)
def test_bad_urls_are_configuration_errors(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        connect(url)


async def test_connect_picks_the_client() -> None:
    one, many = connect("redis://127.0.0.1:1/0"), connect("redis+cluster://127.0.0.1:1")
    assert type(one) is Redis and not is_cluster(one)
    assert isinstance(many, RedisCluster) and is_cluster(many)
    await one.aclose()
    await many.aclose()


def test_keys_used_together_share_a_hash_tag() -> None:
    keys = RedisKeys("prod:")
    limiter = [keys.rpm("openai", "m"), keys.tpm("openai", "m"), keys.scope_rpm("user", "u")]
    jobs = [keys.job_stream("high"), keys.job_delayed, keys.job_result("j"), keys.job_cancel("j")]
    assert all(k.startswith("{prod:ratelimit}:") for k in limiter)
    assert all(k.startswith("{prod:jobs}:") for k in [*jobs, keys.job_transport_marker])
    assert len({keyslot(k) for k in limiter}) == 1 and len({keyslot(k) for k in jobs}) == 1
    assert keys.patterns() == ["prod:*", "{prod:*"]
