"""``ai-agents serve`` and ``ai-agents keys create|list|revoke``.

``serve`` runs the API under uvicorn (a production ASGI server) with the app factory
:func:`api.app.create_app_from_env`, so each worker process builds its own store from
the environment and closes it on shutdown. ``keys`` manages API keys directly in the
database (the secret of a new key is printed once; only its hash is stored). Without a
database or Redis URL both use this user's embedded servers (:mod:`ai_agents.embedded`),
as ``demo`` and ``chat`` do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from ai_agents.cli import command, run_async
from ai_agents.commands._shared import command_settings


def _configure_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes (default 1), each with its pools"
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn log level",
    )
    parser.add_argument("--no-access-log", action="store_true", help="do not log every request")
    parser.add_argument(
        "--log-json",
        action="store_true",
        help="log one JSON object per line, with request and run ids "
        "(or AI_AGENTS_LOG_FORMAT=json)",
    )
    parser.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="trust X-Forwarded-* from these proxy IPs (uvicorn's option)",
    )


@command("serve", "serve the REST API (uvicorn)", _configure_serve)
def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ai_agents.observability.logs import json_requested, use_json_logs, uvicorn_log_config
    from ai_agents.observability.metrics import multiprocess_directory
    from ai_agents.observability.tracing import require_if_enabled

    require_if_enabled()  # each worker sets tracing up; a missing extra fails here first
    json_logs = json_requested(args.log_json)
    if json_logs:
        use_json_logs()

    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return 2
    from ai_agents.api.config import ApiConfig

    ApiConfig.from_env()  # checks every setting: a malformed one fails now, in one line
    settings = command_settings()
    # The app factory runs in each server process and reads the environment: give it the
    # URLs found here (the embedded servers' when none was configured).
    os.environ["AI_AGENTS_DATABASE_URL"] = str(settings.database_url)
    if settings.redis_url:
        os.environ["AI_AGENTS_REDIS_URL"] = settings.redis_url
    options: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "log_level": args.log_level,
        "access_log": not args.no_access_log,
        "factory": True,
        "lifespan": "on",
    }
    if args.forwarded_allow_ips:
        options["forwarded_allow_ips"] = args.forwarded_allow_ips
    if json_logs:
        options["log_config"] = uvicorn_log_config(args.log_level)
    # Several workers share their metrics through files (a scrape of any one counts all).
    with multiprocess_directory(args.workers):
        uvicorn.run("ai_agents.api.app:create_app_from_env", **options)
    return 0


def _configure_keys(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="create a key and print its secret (shown once)")
    create.add_argument("--tenant", required=True, help="tenant the key acts for")
    create.add_argument("--name", required=True, help="a label to recognise the key")
    create.add_argument(
        "--admin", action="store_true", help="admin scope: manage keys, see every tenant"
    )
    create.add_argument(
        "--rpm", type=int, default=None, help="requests per minute (default: server's; 0: none)"
    )
    listing = sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant", default=None, help="only this tenant's keys")
    listing.add_argument("--active", action="store_true", help="hide revoked keys")
    listing.add_argument("--json", action="store_true", help="JSON lines output")
    revoke = sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", help="the key's id (from `keys list`)")


async def _keys(args: argparse.Namespace) -> int:
    from ai_agents.api.config import ApiConfig
    from ai_agents.api.keys import KeyStore
    from ai_agents.store import AgentStore

    config = ApiConfig.from_env()
    settings = await asyncio.to_thread(command_settings)
    async with AgentStore(settings=settings) as store:
        keys = KeyStore(store, pepper=config.key_pepper, cache_ttl=0)
        if args.keys_command == "create":
            created = await keys.create(
                tenant_id=args.tenant,
                name=args.name,
                scopes=["admin"] if args.admin else [],
                rate_limit_rpm=args.rpm,
            )
            print(f"id:     {created.key.id}")
            print(f"tenant: {created.key.tenant_id}")
            print(f"scopes: {', '.join(created.key.scopes) or '-'}")
            print(f"key:    {created.secret}")
            print("Store the key now: it is not shown again (only its hash is kept).")
        elif args.keys_command == "list":
            found = await keys.list_keys(tenant_id=args.tenant, include_revoked=not args.active)
            for key in found:
                row = {
                    "id": str(key.id),
                    "tenant_id": key.tenant_id,
                    "name": key.name,
                    "prefix": key.prefix,
                    "scopes": list(key.scopes),
                    "rate_limit_rpm": key.rate_limit_rpm,
                    "created_at": key.created_at.isoformat() if key.created_at else None,
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                    "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
                }
                if args.json:
                    print(json.dumps(row))
                else:
                    status = "revoked" if key.revoked_at else "active"
                    scopes = ",".join(key.scopes) or "-"
                    print(
                        f"{key.id}  {key.prefix}…  {key.tenant_id}  {scopes}  {status}  {key.name}"
                    )
        else:
            key = await keys.revoke(args.key_id)
            print(f"revoked {key.id} ({key.name}, tenant {key.tenant_id})")
    return 0


@command("keys", "manage REST API keys: create, list, revoke", _configure_keys)
def _keys_command(args: argparse.Namespace) -> int:
    result: int = run_async(_keys(args))
    return result
