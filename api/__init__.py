"""Entry point kept at the repository's top level: the REST API lives in ``ai_agents.api``.

The wheel does not install this folder (a top-level ``api`` package would clash with
users' own); it serves ``uvicorn --factory api.app:create_app_from_env`` run from a
checkout. Installed code imports :mod:`ai_agents.api`.
"""
