"""The REST API (Litestar): agents, threads, messages, runs, jobs, memory, keys.

    from ai_agents.api.app import create_app
    app = create_app(store)        # or: ai-agents serve --host 0.0.0.0 --port 8000

See ``docs/api.md`` for the endpoints, authentication and settings.
"""

from __future__ import annotations

__all__ = ["create_app"]


def __getattr__(name: str) -> object:
    # Lazy, so ``import api.cli`` (loaded by every ``ai-agents`` command) stays cheap.
    if name == "create_app":
        from ai_agents.api.app import create_app

        return create_app
    raise AttributeError(name)
