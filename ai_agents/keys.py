"""Every Redis key and stream name the platform uses, in one place.

All keys start with a deployment prefix (``AI_AGENTS_REDIS_PREFIX``, default empty) so
several deployments, or tests, can share one Redis without seeing each other's keys.

Redis Cluster: keys one Lua script or one transaction touches together must be on one
slot, so each such group shares a hash tag (the part of the key between ``{`` and ``}``
is all that is hashed): ``{<prefix>ratelimit}:...`` for every rate-limit window (one
acquire checks the model's, the tenant share's and the user/tenant/key windows at once)
and ``{<prefix>jobs}:...`` for the job streams, delayed set, dead letters, results,
cancel flags and the transport marker (finishing a job touches several of them).
Breaker, cache and API-key keys are used one at a time and carry no tag (they spread
over the cluster). Pub/sub channels are not keys and carry no tag either.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RedisKeys:
    prefix: str = ""

    @property
    def _ratelimit(self) -> str:
        return f"{{{self.prefix}ratelimit}}"

    @property
    def _jobs(self) -> str:
        return f"{{{self.prefix}jobs}}"

    def patterns(self) -> list[str]:
        """SCAN patterns matching every key of this prefix (tagged or not)."""
        return [f"{self.prefix}*", f"{{{self.prefix}*"]

    # --- rate limiting (sorted sets scored by time) -------------------------------
    def rpm(self, provider: str, model: str) -> str:
        return f"{self._ratelimit}:{provider}:{model}:rpm"

    def tpm(self, provider: str, model: str) -> str:
        return f"{self._ratelimit}:{provider}:{model}:tpm"

    def scope_rpm(self, scope: str, ident: str) -> str:
        """Per-user / per-tenant / per-API-key request windows (scope: user|tenant|key)."""
        return f"{self._ratelimit}:{scope}:{ident}:rpm"

    def scope_tpm(self, scope: str, ident: str) -> str:
        return f"{self._ratelimit}:{scope}:{ident}:tpm"

    # --- background jobs ----------------------------------------------------------
    def job_stream(self, priority: str) -> str:
        return f"{self._jobs}:agent_runs:{priority}"

    @property
    def job_dead_letter(self) -> str:
        return f"{self._jobs}:agent_runs:dead"

    def job_result(self, job_id: str) -> str:
        return f"{self._jobs}:results:{job_id}"

    def job_cancel(self, job_id: str) -> str:
        return f"{self._jobs}:cancel:{job_id}"

    # (job queue refinements, see docs/jobs.md)
    @property
    def job_delayed(self) -> str:
        """Sorted set of jobs waiting out a retry backoff (score: due time in ms)."""
        return f"{self._jobs}:agent_runs:delayed"

    @property
    def job_done_channel(self) -> str:
        """Pub/sub channel announcing finished job ids (wakes ``get_result`` waiters)."""
        return f"{self.prefix}jobs:done"

    @property
    def job_transport_marker(self) -> str:
        """Set by workers; its absence means Redis lost its data and must be rebuilt."""
        return f"{self._jobs}:transport"

    # --- runs ---------------------------------------------------------------------
    @property
    def run_released_channel(self) -> str:
        """Pub/sub: a thread id whose active run ended while other runs wait for it."""
        return f"{self.prefix}runs:released"

    @property
    def run_cancel_channel(self) -> str:
        """Pub/sub: a run id to cancel, wherever it executes."""
        return f"{self.prefix}runs:cancel"

    # --- REST API keys -------------------------------------------------------------
    @property
    def api_key_revoked_channel(self) -> str:
        """Pub/sub: an API key id just revoked (every API process drops it from its cache)."""
        return f"{self.prefix}api_keys:revoked"

    def api_key_revocation_acks(self, key_id: object) -> str:
        """List: one entry per API process that dropped a revoked key (the revoker waits)."""
        return f"{self.prefix}api_keys:revoked:{key_id}:acks"

    # --- provider resilience ------------------------------------------------------
    def breaker(self, provider: str, base_url: str) -> str:
        return f"{self.prefix}breaker:{provider}:{base_url}"

    def breaker_pattern(self) -> str:
        return f"{self.prefix}breaker:*"

    # --- caching ------------------------------------------------------------------
    def cache_agent(self, agent_id: str) -> str:
        return f"{self.prefix}cache:agent:{agent_id}"
