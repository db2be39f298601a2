"""Cross-process coordination on Redis: the shared rate limiter and the background job queue."""
