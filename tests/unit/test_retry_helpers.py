"""The single definitions shared by model calls, background jobs and pool nodes: the retry
verdict (``is_retryable``), the exponential ``backoff``, and the job priorities."""

from __future__ import annotations

import random
from typing import get_args

import msgspec
import pytest

import ai_agents.api.metrics
from ai_agents.api.schemas import RunCreate
from ai_agents.errors import (
    AgentsError,
    ConfigurationError,
    LimitExceeded,
    NotFoundError,
    ProviderBadRequest,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimitTimeout,
    RunCancelled,
    StorageError,
    ThreadBusyError,
    UnknownModelError,
    ValidationError,
)
from ai_agents.jobs.queue import QueueConfig, RedisJobQueue
from ai_agents.jobs.records import JobRecord
from ai_agents.jobs.tables import PRIORITIES, Priority, jobs
from ai_agents.jobs.worker import JobConsumer
from ai_agents.providers.pool import NodePool
from ai_agents.providers.retry import RetryPolicy, backoff, is_retryable
from ai_agents.testing import ScriptedProvider

# --- is_retryable ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "call", "job"),
    [
        # Vendor errors flagged retryable: both retry.
        (ProviderRateLimited("429", provider="p", status=429), True, True),
        (ProviderTimeout("slow", provider="p"), True, True),
        # Vendor mistakes: neither.
        (ProviderBadRequest("400", provider="p", status=400), False, False),
        # Our own "every candidate failed": not the same provider now, but the job later.
        (ProviderUnavailable("all down", provider="p"), False, True),
        # Infrastructure and the unexpected: a job only (a model call retries vendors only).
        (StorageError("db down"), False, True),
        (RateLimitTimeout("waited too long", retry_after=3.0), False, True),
        (ThreadBusyError("t1"), False, True),
        (RuntimeError("bug in a tool"), False, True),
        # Mistakes another attempt cannot fix: neither.
        (ValidationError("bad input"), False, False),
        (UnknownModelError("no such model"), False, False),
        (NotFoundError("thread", "t1"), False, False),
        (LimitExceeded("tenant", 10, 10, 1), False, False),
        (RunCancelled("cancelled"), False, False),
    ],
)
def test_is_retryable_for_a_call_and_for_a_job(error: Exception, call: bool, job: bool) -> None:
    assert is_retryable(error) is call
    assert is_retryable(error, "call") is call
    assert is_retryable(error, "job") is job


# --- backoff -----------------------------------------------------------------------------


def test_backoff_without_jitter_is_exact_exponential_and_capped() -> None:
    assert [backoff(n, 0.5, 3.0) for n in (0, 1, 2, 3, 4, 5, 30)] == [
        0.5,
        0.5,
        1.0,
        2.0,
        3.0,
        3.0,
        3.0,
    ]


def test_backoff_with_jitter_draws_between_the_jittered_floor_and_the_ceiling() -> None:
    # d = min(10, 2 * 2**2) = 8; jitter 0.25: uniform(6, 8) from the given generator.
    expected = random.Random(11).uniform(6.0, 8.0)
    assert backoff(3, 2.0, 10.0, jitter=0.25, rng=random.Random(11)) == expected
    assert 6.0 <= expected <= 8.0
    # jitter 0 is still a draw, of exactly d; full jitter may reach 0.
    assert backoff(2, 1.5, 10.0, jitter=0.0, rng=random.Random(1)) == 3.0
    waits = [backoff(1, 4.0, 10.0, jitter=1.0, rng=random.Random(s)) for s in range(50)]
    assert 0.0 <= min(waits) < 1.0 and 3.0 < max(waits) <= 4.0


def test_retry_policy_backoff_is_the_shared_backoff() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0, jitter=0.5)
    for attempt in (1, 2, 5, 9):
        assert policy.backoff(attempt, random.Random(attempt)) == backoff(
            attempt, 0.5, 8.0, jitter=0.5, rng=random.Random(attempt)
        )
    assert policy.backoff(5, random.Random(3)) == random.Random(3).uniform(4.0, 8.0)


def _consumer(config: QueueConfig) -> JobConsumer:
    consumer = JobConsumer()
    consumer.config = config
    return consumer


def test_job_retry_waits_the_shared_backoff_jittered_down_to_half() -> None:
    consumer = _consumer(QueueConfig(retry_backoff=2.0, retry_backoff_max=10.0))
    random.seed(5)
    first = consumer._backoff(3, StorageError("db down"))  # d = min(10, 2 * 4) = 8
    random.seed(5)
    assert first == backoff(3, 2.0, 10.0, jitter=0.5)
    assert 4.0 <= first <= 8.0
    capped = [consumer._backoff(12, RuntimeError("x")) for _ in range(50)]
    assert min(capped) >= 5.0 and max(capped) <= 10.0


def test_job_retry_never_waits_less_than_the_vendors_retry_after() -> None:
    consumer = _consumer(QueueConfig(retry_backoff=1.0, retry_backoff_max=10.0))
    error = AgentsError("slow down", details={"retry_after": 42})
    assert consumer._backoff(1, error) == 42.0
    assert RedisJobQueue._backoff is JobConsumer._backoff


def test_pool_node_waits_the_shared_backoff_without_jitter() -> None:
    pool = NodePool(
        [("http://a", ScriptedProvider())],
        name="pool",
        health="ollama",
        retry_after=1.5,
        max_retry_after=10.0,
        clock=lambda: 100.0,
    )
    (node,) = pool._nodes
    retry_at = []
    for _ in range(5):
        pool._mark_down(node, "refused")
        retry_at.append(node.retry_at)
    assert retry_at == [101.5, 103.0, 106.0, 110.0, 110.0]


# --- priorities --------------------------------------------------------------------------


def test_priorities_have_one_definition() -> None:
    assert PRIORITIES == ("high", "normal", "low") == get_args(Priority)
    assert ai_agents.api.metrics.PRIORITIES is PRIORITIES
    check = next(c for c in jobs.constraints if c.name == "ck_jobs_priority")
    assert str(check.sqltext) == "priority IN ('high', 'normal', 'low')"  # type: ignore[attr-defined]
    assert JobRecord.__annotations__["priority"] == "Priority"


def test_the_api_accepts_exactly_the_priorities() -> None:
    for priority in PRIORITIES:
        run = msgspec.convert({"input": "hi", "priority": priority}, RunCreate)
        assert run.priority == priority
    assert msgspec.convert({"input": "hi"}, RunCreate).priority == "normal"
    with pytest.raises(msgspec.ValidationError, match=r"Invalid enum value 'urgent'"):
        msgspec.convert({"input": "hi", "priority": "urgent"}, RunCreate)


def test_queue_weights_follow_the_priorities() -> None:
    assert QueueConfig().weights == (6, 3, 1)
    with pytest.raises(ConfigurationError, match=r"\(high, normal, low\)"):
        QueueConfig(weights=(1, 1))  # type: ignore[arg-type]
