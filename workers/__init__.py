"""Entry point kept at the repository's top level: the workers live in ``ai_agents.workers``.

The wheel does not install this folder (a top-level ``workers`` package would clash with
users' own); ``python -m workers`` from a checkout is ``python -m ai_agents.workers``.
"""
