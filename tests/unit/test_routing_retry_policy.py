"""RetryPolicy: which errors retry, jittered backoff, retry-after, attempt and time bounds."""

from __future__ import annotations

import random

import pytest

from ai_agents.errors import (
    ProviderAuthError,
    ProviderBadRequest,
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    ValidationError,
)
from ai_agents.providers.breaker import BreakerConfig, counts_as_failure
from ai_agents.providers.retry import RetryPolicy, is_retryable


@pytest.mark.parametrize(
    ("error", "retry", "breaker_failure"),
    [
        (ProviderRateLimited("429", provider="p", status=429), True, False),
        (ProviderOverloaded("503", provider="p", status=503), True, True),
        (ProviderOverloaded("529", provider="p", status=529), True, True),
        (ProviderTimeout("slow", provider="p"), True, True),
        (ProviderConnectionError("refused", provider="p"), True, True),
        (ProviderBadResponse("garbage", provider="p", status=200), True, True),
        (ProviderBadRequest("400", provider="p", status=400), False, False),
        (ProviderAuthError("401", provider="p", status=401), False, False),
        (ProviderUnavailable("all down", provider="p"), False, False),
        (ValueError("not a provider error"), False, False),
    ],
)
def test_classification(error: Exception, retry: bool, breaker_failure: bool) -> None:
    assert is_retryable(error) is retry
    assert counts_as_failure(error) is breaker_failure


def test_backoff_is_exponential_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0, jitter=0.5)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (9, 5.0)]:
        waits = [policy.backoff(attempt, rng) for _ in range(200)]
        assert min(waits) >= ceiling * 0.5
        assert max(waits) <= ceiling
        assert len(set(waits)) > 100  # jittered, not constant


def test_no_jitter_is_exact() -> None:
    policy = RetryPolicy(base_delay=0.25, jitter=0.0)
    assert [policy.backoff(n) for n in (1, 2, 3)] == [0.25, 0.5, 1.0]


def test_retry_after_is_honoured_with_at_most_ten_percent_extra() -> None:
    policy = RetryPolicy(base_delay=0.01)
    rng = random.Random(1)
    waits = [policy.delay(1, 3.0, rng) for _ in range(100)]
    assert min(waits) >= 3.0
    assert max(waits) <= 3.3


def test_attempt_bound() -> None:
    policy = RetryPolicy(max_attempts=3, base_delay=0.1, jitter=0)
    assert policy.next_wait(1, 0.0, None) == 0.1
    assert policy.next_wait(2, 0.0, None) == 0.2
    assert policy.next_wait(3, 0.0, None) is None


def test_total_time_bound() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=1.0, jitter=0, max_total=5.0)
    assert policy.next_wait(1, 3.5, None) == 1.0
    assert policy.next_wait(2, 3.5, None) is None  # 3.5 + 2.0 > 5
    # a retry-after longer than what is left: give up now (a fallback may answer)
    assert policy.next_wait(1, 0.0, 30.0) is None
    assert policy.next_wait(1, 0.0, 4.0) is not None


def test_policies_from_mappings() -> None:
    base = RetryPolicy(max_attempts=5)
    policy = RetryPolicy.from_mapping({"base_delay": 0.01}, base)
    assert (policy.max_attempts, policy.base_delay) == (5, 0.01)
    for bad in ({"max_attempts": 0}, {"base_delay": -1}, {"jitter": 2}, {"nope": 1}):
        with pytest.raises(ValidationError):
            RetryPolicy.from_mapping(bad)


def test_breaker_config_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_AGENTS_BREAKER_FAILURE_THRESHOLD", "7")
    monkeypatch.setenv("AI_AGENTS_BREAKER_RECOVERY_TIMEOUT", "12.5")
    config = BreakerConfig.from_sources({"recovery_timeout": 3})
    assert config.failure_threshold == 7
    assert config.recovery_timeout == 3
    with pytest.raises(ValidationError):
        BreakerConfig.from_sources({"threshold": 3})
    with pytest.raises(ValidationError):
        BreakerConfig(failure_threshold=0)
