"""Sliding-window rate limiting shared by every process, on Redis sorted sets.

Why Redis and not an in-process limiter: API servers and workers run as many processes
on many machines, but the vendor counts requests and tokens per API key, so the window
must be one shared object. Every window is a sorted set scored by the Redis server time
(microseconds) at admission:

- the requests window holds one member per admitted request (``"<reservation_id>"``);
- the tokens window holds ``"<reservation_id>:<tokens>"`` members, plus a companion
  string key (``<tokens key>:sum``) with the running total of the tokens in the window,
  so a check costs O(log n) instead of summing the whole window every call. Entries are
  subtracted from the total exactly once, when a trim removes them, so the cost is
  amortised O(log n) per request.

Check-and-reserve is ONE Lua script (run with EVALSHA, falling back to EVAL through
redis-py's ``register_script``): it reads ``TIME`` on the server, trims every involved
window, checks all limits (model and extra scopes such as user or tenant) and either adds
the reservation to all of them or adds nothing and answers how long until the entries
that block it leave the window. Because it is atomic and uses only the server clock,
processes on different machines with skewed clocks still agree, and two of them can never
both take the last slot. (Tests may give the limiter a ``clock`` of their own instead;
the scripts then use the time it passes.)

**Tenant shares (noisy neighbours).** The model's window is one vendor quota shared by
every tenant. Given ``tenant=``, a limiter also keeps the tenant's own slice of the
model's windows (``<model window>:tenant:<tenant>``) and the set of tenants *active* on
the model (``<model rpm key>:tenants``: the tenants that asked for room in the last
window, admitted or not, with their weights and the running total of those weights; a
refused tenant counts as asking again at the time it was told to retry, so one whose
process wakes late keeps its place).
The script then applies a share **only while another tenant is active**: a tenant may
hold at most ``floor(limit * weight / total active weight)`` requests/tokens of the
model's window, except that a tenant holding nothing in it may always make one request
that fits the model's window. Alone, a tenant may use the whole window; as soon as a
second tenant asks for room, the first can take no more than its share until it falls
back under it, so the newcomer gets the room that frees up (and it gets it at once if
the first tenant stopped at its share). The shares are computed in the same atomic script
as every other check, so they are exact across processes.

Limitations (documented, by design): all keys of one check must live on one Redis node
(use a hash tag in the prefix with Redis Cluster); a window is a true sliding window,
i.e. an entry admitted at ``t`` counts against every check made in ``[t, t + window)``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import redis.asyncio as aioredis
from redis import exceptions as redis_exceptions

from ai_agents.errors import RateLimitTimeout, RateLimitUnavailable, ValidationError
from ai_agents.keys import RedisKeys

__all__ = [
    "RateLimits",
    "RedisRateLimiter",
    "RequestExceedsRateLimit",
    "Reservation",
    "ScopeUsage",
    "WindowUsage",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: What redis-py raises (plus the builtins its transport may leak) when Redis cannot be
#: reached or does not answer in time. Anything else (e.g. a script error) is a bug and
#: propagates unchanged.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    redis_exceptions.ConnectionError,
    redis_exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)

_US_PER_S = 1_000_000


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Requests and tokens allowed per window; ``None`` means "not limited"."""

    rpm: int | None = None
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ValidationError(
                    f"rate limit {name} must be a non-negative integer or None, got {value!r}",
                    details={"field": name},
                )


class RequestExceedsRateLimit(ValidationError):
    """The request can never be admitted: it alone exceeds a limit (e.g. tokens > TPM).

    Raised immediately instead of waiting forever for a window that will never be big
    enough. Split the request, lower ``max_tokens`` or raise the limit.
    """

    code = "request_exceeds_rate_limit"


@dataclass(slots=True)
class Reservation:
    """A slot taken in every involved window for one request.

    ``waited`` is how long ``wait_if_needed`` waited (seconds). ``admitted_at`` is the
    Redis server time of admission (epoch seconds, microsecond precision) or ``None``
    for an ``unlimited`` reservation (made while Redis was unreachable and the limiter
    is ``fail_open``). ``tokens`` is what the tokens windows currently hold for it: the
    estimate at first, the real usage after ``record_request``.
    """

    id: str
    estimated_tokens: int
    tokens: int
    waited: float = 0.0
    admitted_at: float | None = None
    unlimited: bool = False
    released: bool = False
    # Keys the reservation was written to, kept so record/release touch exactly those
    # even if the limiter were reconfigured in between.
    rpm_keys: tuple[str, ...] = field(default=(), repr=False)
    tpm_keys: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class ScopeUsage:
    """Current usage of one extra scope (``None`` for a dimension it does not limit)."""

    scope: str
    ident: str
    requests: int | None
    tokens: int | None
    limits: RateLimits


@dataclass(frozen=True, slots=True)
class WindowUsage:
    """What the model's window holds right now, for a "rate-limit window" display.

    The model's requests and tokens are always tracked, even for a dimension without a
    limit, so the display works for unlimited models too. ``reset_in`` is the number of
    seconds until the oldest entry leaves the window (0.0 when it is empty).
    """

    requests: int
    tokens: int
    limits: RateLimits
    window_seconds: float
    reset_in: float
    scopes: tuple[ScopeUsage, ...] = ()

    @property
    def requests_remaining(self) -> int | None:
        return None if self.limits.rpm is None else max(0, self.limits.rpm - self.requests)

    @property
    def tokens_remaining(self) -> int | None:
        return None if self.limits.tpm is None else max(0, self.limits.tpm - self.tokens)


# --------------------------------------------------------------------------------------
# Lua. Layout shared by the scripts:
#   KEYS = n_rpm request windows, then n_tpm pairs (tokens window, running-total key)
#   ARGV[1] = window (µs), ARGV[2] = n_rpm, ARGV[3] = n_tpm, then script-specific args.
# Limits are passed per window; -1 means "track but do not check".
# Scores are integers in µs (< 2^53, exact in Lua doubles and in zset scores).
# --------------------------------------------------------------------------------------

_LUA_COMMON = """
if redis.replicate_commands then pcall(redis.replicate_commands) end

-- The Redis server clock, unless the caller passed its own time (µs, >= 0; -1 = none).
local function now_us(given)
  given = tonumber(given) or -1
  if given >= 0 then return given end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function member_tokens(m)
  return tonumber(string.match(m, ':(%-?%d+)$')) or 0
end

-- Drop entries that left the window; for a tokens window also keep the running total
-- right: subtract exactly what was removed, reset it when the window is empty and
-- rebuild it (O(n), only if it was lost, e.g. deleted by hand) when it is missing.
local function trim_rpm(zkey, cutoff)
  redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cutoff)
  return redis.call('ZCARD', zkey)
end

local function trim_tpm(zkey, skey, cutoff)
  local expired = redis.call('ZRANGEBYSCORE', zkey, '-inf', cutoff)
  if #expired > 0 then
    redis.call('ZREMRANGEBYSCORE', zkey, '-inf', cutoff)
  end
  if redis.call('ZCARD', zkey) == 0 then
    redis.call('DEL', skey)
    return 0
  end
  local raw = redis.call('GET', skey)
  if not raw then
    local total = 0
    for _, m in ipairs(redis.call('ZRANGE', zkey, 0, -1)) do
      total = total + member_tokens(m)
    end
    redis.call('SET', skey, total)
    return total
  end
  local freed = 0
  for _, m in ipairs(expired) do freed = freed + member_tokens(m) end
  if freed ~= 0 then
    return redis.call('DECRBY', skey, freed)
  end
  return tonumber(raw)
end

local window = tonumber(ARGV[1])
local n_rpm = tonumber(ARGV[2])
local n_tpm = tonumber(ARGV[3])
"""

# The active tenants of a model: a zset (tenant -> last request time), a hash (tenant ->
# weight) and the running total of the weights, kept right like a tokens window's total.
# Registers *tenant* (with *weight*) as active now; returns the total active weight and
# the number of active tenants.
_LUA_ACTIVE = """
local function activate(akey, wkey, skey, cutoff, tenant, weight, now, ttl)
  local gone = redis.call('ZRANGEBYSCORE', akey, '-inf', cutoff)
  if #gone > 0 then
    redis.call('ZREMRANGEBYSCORE', akey, '-inf', cutoff)
    local freed = 0
    for _, t in ipairs(gone) do
      freed = freed + (tonumber(redis.call('HGET', wkey, t)) or 0)
      redis.call('HDEL', wkey, t)
    end
    if redis.call('EXISTS', skey) == 1 then redis.call('DECRBY', skey, freed) end
  end
  if redis.call('EXISTS', skey) == 0 then
    local total = 0
    for _, w in ipairs(redis.call('HVALS', wkey)) do total = total + tonumber(w) end
    redis.call('SET', skey, total)
  end
  local old = tonumber(redis.call('HGET', wkey, tenant))
  if old ~= weight then
    redis.call('HSET', wkey, tenant, weight)
    redis.call('INCRBY', skey, weight - (old or 0))
  end
  redis.call('ZADD', akey, 'GT', now, tenant)
  for _, k in ipairs({akey, wkey, skey}) do redis.call('PEXPIRE', k, ttl) end
  return tonumber(redis.call('GET', skey)), redis.call('ZCARD', akey)
end

-- When the first other active tenant was last seen (it goes inactive one window later,
-- and the shares grow then), or -1.
local function others_seen_at(akey, tenant)
  local e = redis.call('ZRANGE', akey, 0, 1, 'WITHSCORES')
  for k = 1, #e, 2 do
    if e[k] ~= tenant then return tonumber(e[k + 1]) end
  end
  return -1
end
"""

# ARGV[4] = reservation id, ARGV[5] = tokens, ARGV[6..] = n_rpm rpm limits, n_tpm tpm
# limits, then the tenant share: rpm share window index, tpm share window index (0: none;
# the model's windows are always the first of each kind), tenant, weight, then the
# caller's time (µs, or -1: Redis TIME). With a share, KEYS ends with the active-tenant
# keys (zset, weights hash, weights total).
# Returns {1, now_us} when admitted, {0, retry_us, now_us} when refused, or
# {-1, window_index} when the request can never fit that window's limit.
_ACQUIRE_LUA = (
    _LUA_COMMON
    + _LUA_ACTIVE
    + """
local rid = ARGV[4]
local tokens = tonumber(ARGV[5])
local now = now_us(ARGV[5 + n_rpm + n_tpm + 5])
local cutoff = now - window
local ttl = math.floor(window / 1000) + 1000
local retry = 0
local cards = {}
local totals = {}

-- How long until `need` tokens of the oldest entries of zkey have left the window.
local function tokens_wait(zkey, need)
  local freed = 0
  local start = 0
  while true do
    local batch = redis.call('ZRANGE', zkey, start, start + 99, 'WITHSCORES')
    if #batch == 0 then return window end
    for k = 1, #batch, 2 do
      freed = freed + member_tokens(batch[k])
      if freed >= need then return tonumber(batch[k + 1]) + window - now end
    end
    start = start + 100
  end
end

-- How long until the (drop)-th oldest entry of zkey has left the window.
local function entries_wait(zkey, drop)
  local e = redis.call('ZRANGE', zkey, drop - 1, drop - 1, 'WITHSCORES')
  return tonumber(e[2]) + window - now
end

for i = 1, n_rpm do
  local limit = tonumber(ARGV[5 + i])
  if limit >= 0 and limit < 1 then return {-1, i} end
  local card = trim_rpm(KEYS[i], cutoff)
  cards[i] = card
  if limit >= 0 and card + 1 > limit then
    -- the (card - limit + 1) oldest entries must leave for one slot to free up
    local wait = entries_wait(KEYS[i], card - limit + 1)
    if wait > retry then retry = wait end
  end
end

for j = 1, n_tpm do
  local limit = tonumber(ARGV[5 + n_rpm + j])
  local zkey = KEYS[n_rpm + 2 * j - 1]
  local skey = KEYS[n_rpm + 2 * j]
  if limit >= 0 and tokens > limit then return {-1, n_rpm + j} end
  local total = trim_tpm(zkey, skey, cutoff)
  totals[j] = total
  if limit >= 0 and total + tokens > limit then
    local wait = tokens_wait(zkey, total + tokens - limit)
    if wait > retry then retry = wait end
  end
end

local a = 5 + n_rpm + n_tpm
local share_rpm = tonumber(ARGV[a + 1]) or 0
local share_tpm = tonumber(ARGV[a + 2]) or 0
local tenant = ARGV[a + 3]
local akey = nil
if share_rpm > 0 or share_tpm > 0 then
  local weight = tonumber(ARGV[a + 4])
  local base = n_rpm + 2 * n_tpm
  akey = KEYS[base + 1]
  local total_w, n_active = activate(
    akey, KEYS[base + 2], KEYS[base + 3], cutoff, tenant, weight, now, ttl)
  if n_active > 1 and total_w > 0 then
    -- Over its share while others are active: wait until enough of its own entries
    -- leave (holding nothing, it may always make one request), or until the first
    -- other tenant goes inactive, whichever comes first.
    local share_wait = 0
    if share_rpm > 0 then
      local cap = math.floor(tonumber(ARGV[6]) * weight / total_w)
      local used = cards[share_rpm]
      if used > 0 and used + 1 > cap then
        share_wait = entries_wait(KEYS[share_rpm], math.min(used - cap + 1, used))
      end
    end
    if share_tpm > 0 then
      local cap = math.floor(tonumber(ARGV[6 + n_rpm]) * weight / total_w)
      local used = totals[share_tpm]
      if used > 0 and used + tokens > cap then
        local wait = tokens_wait(
          KEYS[n_rpm + 2 * share_tpm - 1], math.min(used + tokens - cap, used))
        if wait > share_wait then share_wait = wait end
      end
    end
    if share_wait > 0 then
      local seen = others_seen_at(akey, tenant)
      if seen >= 0 and seen + window - now < share_wait then
        share_wait = math.max(1, seen + window - now)
      end
      if share_wait > retry then retry = share_wait end
    end
  end
end

if retry > 0 then
  if akey then
    -- A refused tenant is waiting: it counts as seen when it will ask again, so a
    -- waiter that wakes late (a busy process) does not drop out of the active set
    -- and hand its share to the others while it sleeps.
    local base = n_rpm + 2 * n_tpm
    redis.call('ZADD', akey, 'GT', now + retry, tenant)
    for k = base + 1, base + 3 do
      redis.call('PEXPIRE', KEYS[k], ttl + math.floor(retry / 1000))
    end
  end
  return {0, retry, now}
end

for i = 1, n_rpm do
  redis.call('ZADD', KEYS[i], now, rid)
  redis.call('PEXPIRE', KEYS[i], ttl)
end
for j = 1, n_tpm do
  local zkey = KEYS[n_rpm + 2 * j - 1]
  local skey = KEYS[n_rpm + 2 * j]
  redis.call('ZADD', zkey, now, rid .. ':' .. ARGV[5])
  redis.call('INCRBY', skey, tokens)
  redis.call('PEXPIRE', zkey, ttl)
  redis.call('PEXPIRE', skey, ttl)
end
return {1, now}
"""
)

# ARGV[4] = reservation id, ARGV[5] = tokens currently recorded, ARGV[6] = new tokens or
# 'release'. Correcting keeps the entry's admission time, so it leaves the window when
# the original would have. An entry that already left the window is left alone.
# Returns the number of entries changed.
_ADJUST_LUA = (
    _LUA_COMMON
    + """
local rid = ARGV[4]
local old = tonumber(ARGV[5])
local old_member = rid .. ':' .. ARGV[5]
local changed = 0

if ARGV[6] == 'release' then
  for i = 1, n_rpm do
    changed = changed + redis.call('ZREM', KEYS[i], rid)
  end
  for j = 1, n_tpm do
    local zkey = KEYS[n_rpm + 2 * j - 1]
    local skey = KEYS[n_rpm + 2 * j]
    if redis.call('ZREM', zkey, old_member) == 1 then
      changed = changed + 1
      if redis.call('EXISTS', skey) == 1 then redis.call('DECRBY', skey, old) end
    end
  end
  return changed
end

local new = tonumber(ARGV[6])
local new_member = rid .. ':' .. ARGV[6]
for j = 1, n_tpm do
  local zkey = KEYS[n_rpm + 2 * j - 1]
  local skey = KEYS[n_rpm + 2 * j]
  local score = redis.call('ZSCORE', zkey, old_member)
  if score then
    redis.call('ZREM', zkey, old_member)
    redis.call('ZADD', zkey, score, new_member)
    if redis.call('EXISTS', skey) == 1 then redis.call('INCRBY', skey, new - old) end
    changed = changed + 1
  end
end
return changed
"""
)

# ARGV[4] = the caller's time (µs, or -1: Redis TIME).
# Returns, per window, {count, tokens (0 for request windows), oldest score or -1}
# flattened, then now_us.
_USAGE_LUA = (
    _LUA_COMMON
    + """
local now = now_us(ARGV[4])
local cutoff = now - window
local out = {}
local function oldest(zkey)
  local e = redis.call('ZRANGE', zkey, 0, 0, 'WITHSCORES')
  if #e == 0 then return -1 end
  return tonumber(e[2])
end
for i = 1, n_rpm do
  local card = trim_rpm(KEYS[i], cutoff)
  table.insert(out, card)
  table.insert(out, 0)
  table.insert(out, oldest(KEYS[i]))
end
for j = 1, n_tpm do
  local zkey = KEYS[n_rpm + 2 * j - 1]
  local total = trim_tpm(zkey, KEYS[n_rpm + 2 * j], cutoff)
  table.insert(out, redis.call('ZCARD', zkey))
  table.insert(out, total)
  table.insert(out, oldest(zkey))
end
table.insert(out, now)
return out
"""
)


def _total_key(tpm_key: str) -> str:
    """Companion key holding the running token total of a tokens window."""
    return f"{tpm_key}:sum"


def _share_key(model_key: str, tenant: str) -> str:
    """A tenant's slice of a model window (same members as the model window)."""
    return f"{model_key}:tenant:{tenant}"


def _active_keys(model_rpm_key: str) -> list[str]:
    """The model's active tenants: zset (last request), hash (weight), weights total."""
    base = f"{model_rpm_key}:tenants"
    return [base, f"{base}:weights", f"{base}:weights:sum"]


@dataclass(frozen=True, slots=True)
class _Window:
    """One sorted set the limiter checks: a requests or a tokens window."""

    kind: str  # "rpm" | "tpm"
    key: str
    limit: int | None
    label: str  # human-readable owner, for error messages


class RedisRateLimiter:
    """Admits requests to one (provider, model) within its RPM/TPM limits, across processes.

    ``limits`` comes from the caller (the runner reads the model registry, callers may
    override it). ``scopes`` adds windows checked atomically with the model's, e.g.
    ``[("user", "u1", RateLimits(rpm=10)), ("tenant", "t1", RateLimits(tpm=100_000))]``:
    a request is admitted only if it fits all of them, and then it is counted in all.

    ``tenant`` (with ``tenant_weight``, a positive integer) adds the tenant's share of the
    model's limited windows (module docstring): while other tenants are active on the
    model, this tenant may hold at most its weighted share of each.

    With ``fail_open=True`` an unreachable Redis does not stop requests: every such call
    logs a WARNING and returns an ``unlimited`` reservation. The default is to raise
    ``RateLimitUnavailable``, because silently exceeding a vendor's limits gets API keys
    throttled or banned.

    ``clock`` (a callable returning the time in integer microseconds) replaces the Redis
    server clock in the scripts, and also measures ``waited`` and ``max_wait``; ``sleep``
    replaces ``asyncio.sleep`` in :meth:`wait_if_needed`. Both are for tests that control
    time (e.g. a fake clock whose ``sleep`` advances it). Every limiter sharing windows
    must use the same clock; by default they all use Redis ``TIME``, which is what lets
    processes with skewed clocks agree.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        *,
        provider: str,
        model: str,
        limits: RateLimits,
        scopes: Sequence[tuple[str, str, RateLimits]] = (),
        window_seconds: float = 60.0,
        fail_open: bool = False,
        max_jitter: float = 0.01,
        tenant: str | None = None,
        tenant_weight: int = 1,
        clock: Callable[[], int] | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        if (
            isinstance(tenant_weight, bool)
            or not isinstance(tenant_weight, int)
            or tenant_weight < 1
        ):
            raise ValidationError(
                f"tenant_weight must be a positive integer, got {tenant_weight!r}",
                details={"field": "tenant_weight"},
            )
        if window_seconds <= 0:
            raise ValidationError(
                "window_seconds must be positive", details={"field": "window_seconds"}
            )
        if max_jitter < 0:
            raise ValidationError("max_jitter must be >= 0", details={"field": "max_jitter"})
        self._client = client
        self._keys = keys
        self.provider = provider
        self.model = model
        self.limits = limits
        self.scopes: tuple[tuple[str, str, RateLimits], ...] = tuple(scopes)
        self.tenant = tenant
        self.tenant_weight = tenant_weight
        self.window_seconds = window_seconds
        self.fail_open = fail_open
        self._max_jitter = max_jitter
        self._window_us = max(1, round(window_seconds * _US_PER_S))
        self._clock = clock
        self._sleep: Callable[[float], Awaitable[None]] = sleep or asyncio.sleep

        # The model's windows are always tracked (limit None = count only) so usage()
        # is meaningful for every model; scope windows exist only for limited dimensions.
        model_label = f"{provider}/{model}"
        rpm: list[_Window] = [_Window("rpm", keys.rpm(provider, model), limits.rpm, model_label)]
        tpm: list[_Window] = [_Window("tpm", keys.tpm(provider, model), limits.tpm, model_label)]
        # The tenant's slices of the model's limited windows, checked against a share the
        # script computes (their own limit is "track only"); indexes are 1-based for Lua.
        self._share_rpm = self._share_tpm = 0
        self._active_keys: list[str] = []
        if tenant is not None and (limits.rpm is not None or limits.tpm is not None):
            label = f"tenant {tenant} share of {model_label}"
            if limits.rpm is not None:
                rpm.append(_Window("rpm", _share_key(rpm[0].key, tenant), None, label))
                self._share_rpm = len(rpm)
            if limits.tpm is not None:
                tpm.append(_Window("tpm", _share_key(tpm[0].key, tenant), None, label))
                self._share_tpm = len(tpm)
            self._active_keys = _active_keys(rpm[0].key)
        for scope, ident, scope_limits in self.scopes:
            label = f"{scope} {ident}"
            if scope_limits.rpm is not None:
                rpm.append(_Window("rpm", keys.scope_rpm(scope, ident), scope_limits.rpm, label))
            if scope_limits.tpm is not None:
                tpm.append(_Window("tpm", keys.scope_tpm(scope, ident), scope_limits.tpm, label))
        self._rpm_windows: tuple[_Window, ...] = tuple(rpm)
        self._tpm_windows: tuple[_Window, ...] = tuple(tpm)
        self._redis_keys: list[str] = [w.key for w in rpm]
        for w in tpm:
            self._redis_keys += [w.key, _total_key(w.key)]

        self._acquire = client.register_script(_ACQUIRE_LUA)
        self._adjust = client.register_script(_ADJUST_LUA)
        self._usage = client.register_script(_USAGE_LUA)

    # --- public API ---------------------------------------------------------------------

    async def wait_if_needed(
        self, estimated_tokens: int, *, max_wait: float | None = None
    ) -> Reservation:
        """Block until the request fits every window, then return its reservation.

        Sleeps exactly until the entry that blocks it leaves the window (the script
        tells how long) plus a tiny random jitter, so waiters wake as soon as room
        frees up without all hitting Redis in the same millisecond. If the wait would
        exceed ``max_wait`` seconds, raises ``RateLimitTimeout`` right away (with
        ``retry_after``) rather than sleeping for nothing.
        """
        if max_wait is not None and max_wait < 0:
            raise ValidationError("max_wait must be >= 0", details={"field": "max_wait"})
        started = self._seconds()
        while True:
            reservation, retry_after = await self.try_acquire(estimated_tokens)
            elapsed = self._seconds() - started
            if reservation is not None:
                reservation.waited = elapsed
                return reservation
            if max_wait is not None and elapsed + retry_after > max_wait:
                raise RateLimitTimeout(
                    f"rate limit for {self.provider}/{self.model}: no room for "
                    f"{estimated_tokens} tokens within max_wait={max_wait:.3f}s "
                    f"(next room in {retry_after:.3f}s, waited {elapsed:.3f}s)",
                    retry_after=retry_after,
                )
            delay = retry_after + random.uniform(0.0, self._max_jitter)
            if max_wait is not None:
                # Still >= retry_after, since elapsed + retry_after <= max_wait here.
                delay = min(delay, max_wait - elapsed)
            await self._sleep(max(delay, 0.0005))

    async def try_acquire(self, estimated_tokens: int) -> tuple[Reservation | None, float]:
        """Reserve a slot now if the request fits, without waiting.

        Returns ``(reservation, 0.0)`` when admitted, else ``(None, seconds)`` where
        ``seconds`` is when it could fit at the earliest (if nobody else takes the room).
        """
        self._check_fits_at_all(estimated_tokens)
        rid = uuid.uuid4().hex
        args: list[int | str] = [
            self._window_us,
            len(self._rpm_windows),
            len(self._tpm_windows),
            rid,
            estimated_tokens,
        ]
        args += [-1 if w.limit is None else w.limit for w in self._rpm_windows]
        args += [-1 if w.limit is None else w.limit for w in self._tpm_windows]
        args += [self._share_rpm, self._share_tpm, self.tenant or "", self.tenant_weight]
        args.append(self._now_arg())
        keys = self._redis_keys + self._active_keys
        try:
            result = await self._run(self._acquire(keys=keys, args=args))
        except RateLimitUnavailable as exc:
            if not self.fail_open:
                raise
            logger.warning(
                "RATE LIMITING DISABLED for %s/%s: Redis is unreachable (%s); proceeding "
                "WITHOUT limits because fail_open=True",
                self.provider,
                self.model,
                exc.__cause__,
            )
            return (
                Reservation(rid, estimated_tokens, estimated_tokens, unlimited=True),
                0.0,
            )
        status = int(result[0])
        if status == 1:
            return (
                Reservation(
                    id=rid,
                    estimated_tokens=estimated_tokens,
                    tokens=estimated_tokens,
                    admitted_at=int(result[1]) / _US_PER_S,
                    rpm_keys=tuple(w.key for w in self._rpm_windows),
                    tpm_keys=tuple((w.key, _total_key(w.key)) for w in self._tpm_windows),
                ),
                0.0,
            )
        if status == 0:
            return None, int(result[1]) / _US_PER_S
        # Only reachable if the limits changed between the local check and the script.
        windows = self._rpm_windows + self._tpm_windows
        raise self._too_large(windows[int(result[1]) - 1], estimated_tokens)

    async def record_request(self, reservation: Reservation, tokens_used: int) -> None:
        """Replace the reservation's estimated tokens by the real usage in the windows.

        The entry keeps its admission time, so the correction changes how many tokens
        the window holds but not when they leave it. If the entry already left the
        window there is nothing to correct. Safe to call more than once.
        """
        if tokens_used < 0:
            raise ValidationError("tokens_used must be >= 0", details={"field": "tokens_used"})
        if reservation.unlimited or reservation.released:
            return
        if tokens_used == reservation.tokens or not reservation.tpm_keys:
            reservation.tokens = tokens_used
            return
        await self._adjust_reservation(reservation, str(tokens_used), "record the usage of")
        reservation.tokens = tokens_used

    async def release(self, reservation: Reservation) -> None:
        """Give the slot back, for a request that was never sent. Idempotent."""
        if reservation.unlimited or reservation.released:
            return
        await self._adjust_reservation(reservation, "release", "release")
        reservation.released = True

    async def usage(self) -> WindowUsage:
        """Requests and tokens currently in the window (model, then each extra scope).

        Raises ``RateLimitUnavailable`` when Redis is unreachable, even with
        ``fail_open``: there is no usage to show, and a display can say so.
        """
        args = [
            self._window_us,
            len(self._rpm_windows),
            len(self._tpm_windows),
            self._now_arg(),
        ]
        raw = await self._run(self._usage(keys=self._redis_keys, args=args))
        values = [int(v) for v in raw]
        now = values[-1]
        per_window: dict[tuple[str, str], tuple[int, int, int]] = {}
        for index, window in enumerate(self._rpm_windows + self._tpm_windows):
            count, tokens, oldest = values[3 * index : 3 * index + 3]
            per_window[(window.kind, window.key)] = (count, tokens, oldest)

        m_rpm = per_window[("rpm", self._rpm_windows[0].key)]
        m_tpm = per_window[("tpm", self._tpm_windows[0].key)]
        oldest_candidates = [o for o in (m_rpm[2], m_tpm[2]) if o >= 0]
        reset_in = (
            max(0.0, (min(oldest_candidates) + self._window_us - now) / _US_PER_S)
            if oldest_candidates
            else 0.0
        )
        scopes: list[ScopeUsage] = []
        for scope, ident, limits in self.scopes:
            r = per_window.get(("rpm", self._keys.scope_rpm(scope, ident)))
            t = per_window.get(("tpm", self._keys.scope_tpm(scope, ident)))
            scopes.append(
                ScopeUsage(
                    scope=scope,
                    ident=ident,
                    requests=r[0] if r is not None else None,
                    tokens=t[1] if t is not None else None,
                    limits=limits,
                )
            )
        return WindowUsage(
            requests=m_rpm[0],
            tokens=m_tpm[1],
            limits=self.limits,
            window_seconds=self.window_seconds,
            reset_in=reset_in,
            scopes=tuple(scopes),
        )

    # --- internals ----------------------------------------------------------------------

    def _now_arg(self) -> int:
        """The time the scripts use: the injected clock's (µs), or -1 for Redis ``TIME``."""
        return -1 if self._clock is None else int(self._clock())

    def _seconds(self) -> float:
        """Local time for measuring waits: the injected clock, else the monotonic one."""
        return time.monotonic() if self._clock is None else self._clock() / _US_PER_S

    def _check_fits_at_all(self, estimated_tokens: int) -> None:
        """Refuse up front what no amount of waiting can admit."""
        if isinstance(estimated_tokens, bool) or estimated_tokens < 0:
            raise ValidationError(
                f"estimated_tokens must be a non-negative integer, got {estimated_tokens!r}",
                details={"field": "estimated_tokens"},
            )
        for window in self._rpm_windows:
            if window.limit is not None and window.limit < 1:
                raise self._too_large(window, estimated_tokens)
        for window in self._tpm_windows:
            if window.limit is not None and estimated_tokens > window.limit:
                raise self._too_large(window, estimated_tokens)

    def _too_large(self, window: _Window, estimated_tokens: int) -> RequestExceedsRateLimit:
        per = f"per {self.window_seconds:g}s window"
        if window.kind == "rpm":
            message = (
                f"rate limit of {window.label} allows {window.limit} requests {per}: "
                "no request can ever be admitted"
            )
        else:
            message = (
                f"request estimated at {estimated_tokens} tokens can never fit the "
                f"{window.limit}-token limit {per} of {window.label}; lower max_tokens, "
                "shorten the input or raise the limit"
            )
        return RequestExceedsRateLimit(
            message,
            details={
                "field": "estimated_tokens",
                "estimated_tokens": estimated_tokens,
                "limit": window.limit,
                "kind": window.kind,
                "scope": window.label,
            },
        )

    async def _adjust_reservation(self, reservation: Reservation, new: str, what: str) -> None:
        keys = list(reservation.rpm_keys)
        for zkey, skey in reservation.tpm_keys:
            keys += [zkey, skey]
        args: list[int | str] = [
            self._window_us,
            len(reservation.rpm_keys),
            len(reservation.tpm_keys),
            reservation.id,
            reservation.tokens,
            new,
        ]
        try:
            await self._run(self._adjust(keys=keys, args=args))
        except RateLimitUnavailable as exc:
            if not self.fail_open:
                raise
            # The window keeps the old value until it expires; with fail_open that is
            # the lesser evil compared with failing a request that already succeeded.
            logger.warning(
                "RATE LIMITING DEGRADED for %s/%s: could not %s reservation %s, Redis is "
                "unreachable (%s); continuing because fail_open=True",
                self.provider,
                self.model,
                what,
                reservation.id,
                exc.__cause__,
            )

    async def _run(self, call: Awaitable[_T]) -> _T:
        """Await a Redis call, turning "Redis unreachable" into ``RateLimitUnavailable``."""
        try:
            return await call
        except _UNREACHABLE as exc:
            raise RateLimitUnavailable(
                f"rate limiter for {self.provider}/{self.model} cannot reach Redis "
                f"({type(exc).__name__}: {exc}); refusing to send unlimited requests "
                "(construct the limiter with fail_open=True to proceed without limits)",
                details={"provider": self.provider, "model": self.model},
            ) from exc
