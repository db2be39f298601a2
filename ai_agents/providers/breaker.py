"""Circuit breakers per (provider, base URL), shared by every process through Redis.

Why shared: with ten workers, a vendor that is down should be noticed after N failures
in total, not N failures in each worker, and an operator should see one state.

States (one Redis hash per endpoint, key :meth:`RedisKeys.breaker`):

- ``closed``: calls go through; each failure of the *vendor* (5xx/529, timeout,
  connection error: :func:`counts_as_failure`) increments ``failures``; a success
  resets it. 429 and 4xx answers are the vendor working: they change nothing.
- ``open``: after ``failure_threshold`` consecutive failures. Calls fail fast (or the
  fallback chain moves on) without touching the vendor until ``retry_at`` (set by the
  process that opened it: opened_at + ``recovery_timeout``).
- ``half_open``: the first caller after ``retry_at`` gets the single *probe* lease
  (``probe_timeout`` long); everyone else still fails fast. The probe's success closes
  the breaker, its failure re-opens it for another ``recovery_timeout``. A probe that
  ends with a 4xx/429 hands the lease back.

All transitions are Lua scripts using the Redis server clock (one round trip each, atomic,
no dependence on the workers' clocks; tests may pass a ``server_clock`` instead).
Hot-path cost, documented and tested:

- :meth:`CircuitBreakers.allow` reads Redis at most once per call, and not at all when a
  *closed* state (or an *open* state whose ``retry_at`` has not come) was read by this
  process less than ``cache_ttl`` (default 1 s) ago. So another process notices a
  breaker opened elsewhere within ``cache_ttl`` (plus the call in flight).
- :meth:`CircuitBreakers.record_success` writes only when the last known state is not
  "closed with zero failures" (a healthy vendor costs no writes at all).
- :meth:`CircuitBreakers.record_failure` is one round trip that also returns the new
  state, so a retry loop can stop as soon as the breaker opens.

If Redis itself fails, the breaker *fails open* (calls proceed; a warning is logged):
it protects the vendor and our latency, it must not become an outage of its own.

Operators: :meth:`CircuitBreakers.status` lists every breaker with its state, failures,
last error and times; :meth:`CircuitBreakers.reset` closes one by hand.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, Literal

from ai_agents.errors import (
    ProviderBadResponse,
    ProviderConnectionError,
    ProviderOverloaded,
    ProviderTimeout,
    ValidationError,
)
from ai_agents.keys import RedisKeys
from ai_agents.providers.catalog import PROVIDERS

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from ai_agents.providers.base import Provider

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "BreakerStatus",
    "CircuitBreakers",
    "Permit",
    "counts_as_failure",
    "endpoint_of",
]

log = logging.getLogger("ai_agents.breaker")

State = Literal["closed", "open", "half_open", "unknown"]


def counts_as_failure(exc: BaseException) -> bool:
    """Errors that say the *endpoint* is unhealthy (5xx/529, timeout, unreachable, or
    answering with replies nobody can read)."""
    return isinstance(
        exc,
        ProviderOverloaded | ProviderTimeout | ProviderConnectionError | ProviderBadResponse,
    )


def endpoint_of(provider: Provider) -> str:
    """The base URL a provider instance talks to (its breaker is keyed on it)."""
    url = getattr(provider, "base_url", None) or provider.settings.base_url
    if not url:
        # No URL of its own: the adapter talks to its catalog URL (env override, else the
        # vendor's default), as its SDK does.
        spec = PROVIDERS.get(provider.kind)
        url = (spec.resolve_base_url() if spec else None) or f"{provider.kind}:local"
    return str(url).rstrip("/")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerConfig:
    """Thresholds, from ``Settings.extra["breaker"]`` or ``AI_AGENTS_BREAKER_*`` env vars."""

    failure_threshold: int = 5
    recovery_timeout: float = 30.0
    probe_timeout: float = 60.0
    cache_ttl: float = 1.0
    #: Idle breaker hashes expire after this long (refreshed on every write).
    key_ttl: float = 86_400.0

    def __post_init__(self) -> None:
        if not isinstance(self.failure_threshold, int) or self.failure_threshold < 1:
            raise ValidationError(
                "breaker.failure_threshold must be an integer >= 1",
                details={"field": "breaker.failure_threshold"},
            )
        for name in ("recovery_timeout", "probe_timeout", "cache_ttl", "key_ttl"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ValidationError(
                    f"breaker.{name} must be a number >= 0", details={"field": f"breaker.{name}"}
                )

    @classmethod
    def from_sources(cls, extra: Mapping[str, Any] | None = None) -> BreakerConfig:
        """The ``breaker_*`` settings of :func:`ai_agents.settings.load_settings`
        (``AI_AGENTS_BREAKER_<FIELD>``, the ``[breaker]`` table of the settings file) <
        *extra* (a mapping, ``Settings.extra["breaker"]``)."""
        from ai_agents.settings import load_settings

        model = load_settings()
        values: dict[str, Any] = {f.name: getattr(model, f"breaker_{f.name}") for f in fields(cls)}
        if extra:
            unknown = set(extra) - {f.name for f in fields(cls)}
            if unknown:
                raise ValidationError(
                    f"unknown breaker setting(s): {', '.join(sorted(unknown))}",
                    details={"field": "breaker"},
                )
            values.update(extra)
        return replace(cls(), **values)


@dataclass(frozen=True, slots=True)
class Permit:
    """Answer of :meth:`CircuitBreakers.allow`."""

    allowed: bool
    state: State
    #: True when this caller holds the half-open probe lease.
    probe: bool = False
    #: When not allowed: seconds until a probe may be tried.
    retry_in: float = 0.0
    failures: int = 0


@dataclass(frozen=True, slots=True)
class BreakerState:
    """State returned by a recorded failure."""

    state: State
    failures: int
    retry_in: float = 0.0


@dataclass(frozen=True, slots=True)
class BreakerStatus:
    """One breaker as an operator sees it (times are epoch seconds)."""

    provider: str
    base_url: str
    state: str
    failures: int
    opened_count: int
    opened_at: float | None
    retry_at: float | None
    last_error: str | None
    updated_at: float | None

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(slots=True)
class _Known:
    """What this process last learned about one breaker (monotonic deadlines)."""

    state: State
    failures: int
    fresh_until: float
    retry_deadline: float = 0.0


def _now(arg: int) -> str:
    """Lua setting ``now`` (ms): ARGV[arg] when it is >= 0 (the caller's clock), else the
    Redis server clock (``TIME``)."""
    return f"""
local now = tonumber(ARGV[{arg}]) or -1
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""


# KEYS[1] breaker hash; ARGV[1] probe lease (ms), ARGV[2] the caller's time (ms, or -1).
# Returns {state, failures, wait_ms, probe (0|1)}.
_ALLOW = (
    _now(2)
    + """
local h = redis.call('HMGET', KEYS[1], 'state', 'failures', 'retry_at', 'probe_until')
local state = h[1] or 'closed'
local failures = tonumber(h[2]) or 0
if state == 'closed' then
  return {'closed', failures, 0, 0}
end
if state == 'open' then
  local retry_at = tonumber(h[3]) or 0
  if now < retry_at then
    return {'open', failures, retry_at - now, 0}
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[1]),
             'updated_at', now)
  return {'half_open', failures, 0, 1}
end
local probe_until = tonumber(h[4]) or 0
if now < probe_until then
  return {'half_open', failures, probe_until - now, 0}
end
redis.call('HSET', KEYS[1], 'probe_until', now + tonumber(ARGV[1]), 'updated_at', now)
return {'half_open', failures, 0, 1}
"""
)

# KEYS[1]; ARGV: threshold, recovery ms, ttl s, provider, base_url, error, time (ms or -1).
# Returns {state, failures, wait_ms, opened_now (0|1)}.
_FAILURE = (
    _now(7)
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
redis.call('HSET', KEYS[1], 'provider', ARGV[4], 'base_url', ARGV[5], 'last_error', ARGV[6],
           'last_failure_at', now, 'updated_at', now)
local wait = 0
local opened = 0
if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[1])) then
  state = 'open'
  opened = 1
  wait = tonumber(ARGV[2])
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'retry_at', now + wait,
             'probe_until', 0)
  redis.call('HINCRBY', KEYS[1], 'opened_count', 1)
elseif state == 'open' then
  wait = math.max(0, (tonumber(redis.call('HGET', KEYS[1], 'retry_at')) or now) - now)
else
  redis.call('HSET', KEYS[1], 'state', state)
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return {state, failures, wait, opened}
"""
)

# KEYS[1]; ARGV: ttl s, provider, base_url, time (ms or -1). An open breaker stays open (a
# call that started before it opened proves little); closed/half_open become closed with 0
# failures.
_SUCCESS = (
    _now(4)
    + """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'open' then
  return {'open'}
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'failures', 0, 'probe_until', 0,
           'provider', ARGV[2], 'base_url', ARGV[3], 'updated_at', now)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return {'closed'}
"""
)

# KEYS[1]: hand the half-open probe lease back (the probe ended with a 4xx/429).
_RELEASE = """
if redis.call('HGET', KEYS[1], 'state') == 'half_open' then
  redis.call('HSET', KEYS[1], 'probe_until', 0)
end
return 1
"""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(slots=True)
class BreakerStats:
    """Redis round trips made (for tests and the hot-path budget)."""

    reads: int = 0
    writes: int = 0
    errors: int = 0


class CircuitBreakers:
    """All breakers of one deployment (Redis prefix), with a small per-process cache.

    ``clock`` (seconds, monotonic by default) times the per-process cache;
    ``server_clock`` (integer microseconds) replaces the Redis server clock in the
    scripts (``opened_at``, ``retry_at``, probe leases). Both are for tests that control
    time; every process sharing breakers must use the same ``server_clock`` (by default
    they all use Redis ``TIME``).
    """

    def __init__(
        self,
        redis: Callable[[], Redis] | Redis,
        keys: RedisKeys,
        config: BreakerConfig | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        server_clock: Callable[[], int] | None = None,
    ) -> None:
        self._redis_source = redis
        self.keys = keys
        self.config = config or BreakerConfig()
        self.stats = BreakerStats()
        self._clock = clock
        self._server_clock = server_clock
        self._known: dict[str, _Known] = {}
        self._scripts: dict[str, Any] = {}
        self._scripts_for: object = None

    # --- plumbing ---------------------------------------------------------------------

    def _redis(self) -> Redis:
        source = self._redis_source
        return source() if callable(source) else source

    def _script(self, name: str, body: str) -> Any:
        redis = self._redis()
        if self._scripts_for is not redis:  # the store may have reopened its client
            self._scripts = {}
            self._scripts_for = redis
        script = self._scripts.get(name)
        if script is None:
            script = redis.register_script(body)
            self._scripts[name] = script
        return script

    def _remember(self, key: str, state: State, failures: int, wait_ms: float = 0) -> None:
        now = self._clock()
        self._known[key] = _Known(
            state, failures, now + self.config.cache_ttl, now + wait_ms / 1000.0
        )

    def _server_ms(self) -> int:
        """The time the scripts use: ``server_clock`` (µs -> ms), or -1 for Redis ``TIME``."""
        return -1 if self._server_clock is None else int(self._server_clock()) // 1000

    def forget(self) -> None:
        """Drop the local cache (the next :meth:`allow` reads Redis)."""
        self._known.clear()

    def _unavailable(self, exc: Exception, what: str) -> None:
        self.stats.errors += 1
        log.warning("circuit breaker %s failed (Redis): %s; failing open", what, exc)

    # --- the three calls of a model call ------------------------------------------------

    async def allow(self, provider: str, base_url: str) -> Permit:
        """May a call to this endpoint go out now? At most one Redis read."""
        key = self.keys.breaker(provider, base_url)
        known = self._known.get(key)
        now = self._clock()
        if known is not None and now < known.fresh_until:
            if known.state == "closed":
                return Permit(True, "closed", failures=known.failures)
            if known.state == "open" and now < known.retry_deadline:
                return Permit(
                    False, "open", retry_in=known.retry_deadline - now, failures=known.failures
                )
        try:
            self.stats.reads += 1
            raw = await self._script("allow", _ALLOW)(
                keys=[key], args=[int(self.config.probe_timeout * 1000), self._server_ms()]
            )
        except Exception as exc:  # noqa: BLE001 - any Redis failure: fail open
            self._unavailable(exc, "read")
            return Permit(True, "unknown")
        state: State = _text(raw[0])  # type: ignore[assignment]
        failures, wait_ms, probe = int(raw[1]), float(raw[2]), bool(int(raw[3]))
        if probe:
            # Never cache a probe grant: the next caller must ask Redis again.
            self._known.pop(key, None)
            return Permit(True, "half_open", probe=True, failures=failures)
        self._remember(key, state, failures, wait_ms)
        if state == "closed":
            return Permit(True, "closed", failures=failures)
        return Permit(False, state, retry_in=wait_ms / 1000.0, failures=failures)

    async def record_failure(self, provider: str, base_url: str, error: str) -> BreakerState:
        """Count one vendor failure; returns the new state (one round trip)."""
        key = self.keys.breaker(provider, base_url)
        cfg = self.config
        try:
            self.stats.writes += 1
            raw = await self._script("failure", _FAILURE)(
                keys=[key],
                args=[
                    cfg.failure_threshold,
                    int(cfg.recovery_timeout * 1000),
                    max(1, int(cfg.key_ttl)),
                    provider,
                    base_url,
                    error[:500],
                    self._server_ms(),
                ],
            )
        except Exception as exc:  # noqa: BLE001
            self._unavailable(exc, "failure write")
            return BreakerState("unknown", 0)
        state: State = _text(raw[0])  # type: ignore[assignment]
        failures, wait_ms, opened = int(raw[1]), float(raw[2]), bool(int(raw[3]))
        self._remember(key, state, failures, wait_ms)
        if opened:
            log.warning(
                "circuit breaker opened",
                extra={
                    "provider": provider,
                    "base_url": base_url,
                    "failures": failures,
                    "error": error[:200],
                },
            )
        return BreakerState(state, failures, wait_ms / 1000.0)

    async def record_success(self, provider: str, base_url: str, permit: Permit) -> None:
        """A call succeeded: reset/close, unless we already know it is closed with 0."""
        key = self.keys.breaker(provider, base_url)
        known = self._known.get(key)
        if (
            not permit.probe
            and known is not None
            and known.state == "closed"
            and known.failures == 0
        ):
            return
        if permit.state == "unknown":
            return  # Redis was unreachable for allow(); do not hammer it
        try:
            self.stats.writes += 1
            raw = await self._script("success", _SUCCESS)(
                keys=[key],
                args=[max(1, int(self.config.key_ttl)), provider, base_url, self._server_ms()],
            )
        except Exception as exc:  # noqa: BLE001
            self._unavailable(exc, "success write")
            return
        state: State = _text(raw[0])  # type: ignore[assignment]
        if state == "closed":
            self._remember(key, "closed", 0)
            if permit.probe:
                log.info(
                    "circuit breaker closed", extra={"provider": provider, "base_url": base_url}
                )
        else:
            self._known.pop(key, None)

    async def release_probe(self, provider: str, base_url: str) -> None:
        """The probe ended neither healthy nor failed (4xx/429): let another caller probe."""
        try:
            self.stats.writes += 1
            await self._script("release", _RELEASE)(keys=[self.keys.breaker(provider, base_url)])
        except Exception as exc:  # noqa: BLE001
            self._unavailable(exc, "probe release")

    # --- operators ----------------------------------------------------------------------

    async def status(self) -> list[BreakerStatus]:
        """Every breaker of this deployment, sorted by provider and base URL."""
        redis = self._redis()
        out = []
        async for key in redis.scan_iter(match=self.keys.breaker_pattern(), count=500):
            raw: dict[Any, Any] = await redis.hgetall(key)  # type: ignore[misc]
            data = {_text(k): _text(v) for k, v in raw.items()}
            if not data:
                continue

            def seconds(name: str, row: dict[str, str] = data) -> float | None:
                value = row.get(name)
                return int(value) / 1000.0 if value and value != "0" else None

            out.append(
                BreakerStatus(
                    provider=data.get("provider", ""),
                    base_url=data.get("base_url", ""),
                    state=data.get("state", "closed"),
                    failures=int(data.get("failures", 0)),
                    opened_count=int(data.get("opened_count", 0)),
                    opened_at=seconds("opened_at"),
                    retry_at=seconds("retry_at"),
                    last_error=data.get("last_error"),
                    updated_at=seconds("updated_at"),
                )
            )
        return sorted(out, key=lambda s: (s.provider, s.base_url))

    async def reset(self, provider: str, base_url: str) -> None:
        """Forget one breaker (it is closed again, everywhere, at once)."""
        key = self.keys.breaker(provider, base_url)
        await self._redis().delete(key)
        self._known.pop(key, None)
