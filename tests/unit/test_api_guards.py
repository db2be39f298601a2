"""The API's request guards without I/O: the LRU cache, the failed-authentication
throttle and the JSON depth measure (their HTTP behaviour: test_api_hardening.py)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("litestar", reason="the api extra")

from ai_agents.api.auth import FailedAuthThrottle  # noqa: E402
from ai_agents.api.errors import ApiError  # noqa: E402
from ai_agents.api.lru import LruCache  # noqa: E402
from ai_agents.api.request import json_depth_exceeds  # noqa: E402


def test_lru_evicts_the_least_recently_used_entry_one_at_a_time() -> None:
    cache: LruCache[str, int] = LruCache(3)
    for i, key in enumerate("abc"):
        cache.put(key, i)
    assert cache.get("a") == 0  # "a" is now the most recent; "b" the least
    cache.put("d", 3)
    assert cache.keys() == ["c", "a", "d"]  # only "b" went
    cache.put("c", 9)  # rewriting makes it recent too
    cache.put("e", 4)
    assert cache.keys() == ["d", "c", "e"]
    assert len(cache) == 3 and cache.get("a") is None and cache.get("c") == 9


def test_lru_drop_where() -> None:
    cache: LruCache[str, int] = LruCache(10)
    for i in range(6):
        cache.put(str(i), i)
    assert cache.drop_where(lambda v: v % 2 == 0) == 3
    assert cache.keys() == ["1", "3", "5"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _refused(throttle: FailedAuthThrottle, address: str) -> ApiError | None:
    try:
        throttle.check(address)
    except ApiError as exc:
        return exc
    return None


def test_throttle_refuses_an_address_after_the_limit_until_its_window_slides() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(3, 60.0, clock=clock)
    for _ in range(3):
        assert _refused(throttle, "10.0.0.1") is None
        throttle.failed("10.0.0.1")
        clock.now += 10
    refused = _refused(throttle, "10.0.0.1")
    assert refused is not None and refused.status == 429
    assert refused.retry_after == pytest.approx(30.0)  # the first failure leaves at t+60
    assert refused.details["reason"] == "failed_authentications"
    assert _refused(throttle, "10.0.0.2") is None  # per address
    clock.now += 30
    assert _refused(throttle, "10.0.0.1") is None  # one failure left the window
    throttle.failed("10.0.0.1")
    assert _refused(throttle, "10.0.0.1") is not None


def test_throttle_counts_attempts_until_forgiven() -> None:
    throttle = FailedAuthThrottle(2, 60.0, clock=Clock())
    throttle.attempt("a")
    throttle.attempt("a")  # two attempts in flight: the limit is reached before they end
    assert _refused(throttle, "a") is not None
    throttle.forgive("a")  # one key was valid
    assert _refused(throttle, "a") is None


def test_throttle_off_and_bounded() -> None:
    off = FailedAuthThrottle(0, 60.0)
    for _ in range(100):
        off.failed("a")
    assert _refused(off, "a") is None
    small = FailedAuthThrottle(1, 60.0, max_addresses=2)
    for address in ("a", "b", "c"):
        small.failed(address)
    assert _refused(small, "a") is None  # evicted: the least recently failed address
    assert _refused(small, "c") is not None


def _nested(depth: int) -> bytes:
    """Arrays and objects alternating, *depth* levels, with siblings on the way."""
    text = '["x"]'
    for i in range(depth - 1):
        text = f'{{"k": {text}, "s": [1, "]"], "e": {{}}}}' if i % 2 else f"[[], {text}, 2]"
    return text.encode()


@pytest.mark.parametrize("depth", [1, 2, 5, 32, 33, 100, 1000])
def test_json_depth_is_measured_exactly(depth: int) -> None:
    body = _nested(depth)
    if depth < 100:
        json.loads(body)  # the helper writes valid JSON
    assert json_depth_exceeds(body, 32) is (depth > 32)
    assert json_depth_exceeds(body, depth) is False
    assert json_depth_exceeds(body, depth - 1) is True


def test_brackets_inside_strings_do_not_count() -> None:
    tricky = {"a": "[[[[{{{{" * 50, "b": '\\"[[[[', "c": ["]]]}}}\\", "\\\\"], "d": "é[ü"}
    body = json.dumps(tricky, ensure_ascii=False).encode()
    assert json_depth_exceeds(body, 2) is False
    assert json_depth_exceeds(body, 1) is True
    # Malformed text is left to the decoder (which answers 400 itself).
    assert json_depth_exceeds(b"[" * 100, 32) is False
    assert json_depth_exceeds(b"[" * 40 + b"]" * 40, 32) is True
