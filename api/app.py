"""``uvicorn --factory api.app:create_app_from_env`` from a checkout (see ``api/__init__``)."""

from ai_agents.api.app import create_app, create_app_from_env

__all__ = ["create_app", "create_app_from_env"]
