"""The shared rate limiter: sliding-window RPM/TPM limits on Redis, used by runs and API keys.

Everything lives in :mod:`ai_agents.ratelimit.limiter`; the public names are re-exported here.
"""

from ai_agents.ratelimit.limiter import (
    RateLimits,
    RedisRateLimiter,
    RequestExceedsRateLimit,
    Reservation,
    ScopeUsage,
    WindowUsage,
)

__all__ = [
    "RateLimits",
    "RedisRateLimiter",
    "RequestExceedsRateLimit",
    "Reservation",
    "ScopeUsage",
    "WindowUsage",
]
