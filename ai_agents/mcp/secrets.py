"""MCP secrets at rest: headers and bearer tokens, Fernet-encrypted with the operator's key.

``Settings.mcp_secret_key`` (``AI_AGENTS_MCP_SECRET_KEY``) is a Fernet key (urlsafe
base64 of 32 bytes; ``python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"``). For rotation it may hold several keys
separated by commas: the first encrypts, every one decrypts (``MultiFernet``).

The encrypted JSON also names the row it belongs to (tenant, agent, server id): a
ciphertext copied into another row of the table does not decrypt there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from ai_agents.config import Settings
from ai_agents.errors import ConfigurationError, ValidationError

ENV_NAME = "AI_AGENTS_MCP_SECRET_KEY"


@dataclass(frozen=True, slots=True)
class Secrets:
    """What is encrypted: the headers sent to the server and its bearer token."""

    headers: dict[str, str]
    bearer_token: str | None

    def __bool__(self) -> bool:
        return bool(self.headers) or self.bearer_token is not None


def keyring(settings: Settings) -> MultiFernet | None:
    """The configured key(s) (``None``: no key); a malformed key is a ConfigurationError."""
    raw = settings.mcp_secret_key
    if raw is None or not raw.strip():
        return None
    keys: list[Fernet] = []
    for position, part in enumerate(p.strip() for p in raw.split(",")):
        if not part:
            continue
        try:
            keys.append(Fernet(part.encode("ascii")))
        except (ValueError, UnicodeError, TypeError) as exc:
            raise ConfigurationError(
                f"{ENV_NAME} key #{position + 1} is not a Fernet key "
                "(urlsafe base64 of 32 bytes; generate one with Fernet.generate_key())"
            ) from exc
    if not keys:
        return None
    return MultiFernet(keys)


def require_keyring(settings: Settings, *, field: str) -> MultiFernet:
    """The key(s) to encrypt with; refuses clearly when none is configured."""
    ring = keyring(settings)
    if ring is None:
        raise ValidationError(
            f"{field}: cannot store MCP secrets (headers, bearer_token): no encryption key "
            f"is configured on this server (the operator sets {ENV_NAME})",
            details={"field": field, "reason": "no_secret_key"},
        )
    return ring


def _binding(tenant_id: str, agent_id: UUID, server_id: UUID) -> dict[str, str]:
    return {"tenant_id": tenant_id, "agent_id": str(agent_id), "server_id": str(server_id)}


def encrypt(
    ring: MultiFernet, secrets: Secrets, *, tenant_id: str, agent_id: UUID, server_id: UUID
) -> bytes:
    payload = {
        "headers": dict(secrets.headers),
        "bearer_token": secrets.bearer_token,
        "row": _binding(tenant_id, agent_id, server_id),
    }
    return ring.encrypt(json.dumps(payload, separators=(",", ":")).encode("utf-8"))


def decrypt(
    settings: Settings, blob: bytes | None, *, tenant_id: str, agent_id: UUID, server_id: UUID
) -> Secrets:
    """The secrets of one row (empty when it has none)."""
    if blob is None:
        return Secrets({}, None)
    ring = keyring(settings)
    if ring is None:
        raise ConfigurationError(
            f"MCP server {server_id} has encrypted secrets but {ENV_NAME} is not set"
        )
    try:
        data: Any = json.loads(ring.decrypt(bytes(blob)))
    except InvalidToken as exc:
        raise ConfigurationError(
            f"the secrets of MCP server {server_id} do not decrypt with {ENV_NAME} "
            "(was the key replaced rather than rotated? keep the old key after the new one)"
        ) from exc
    if not isinstance(data, dict) or data.get("row") != _binding(tenant_id, agent_id, server_id):
        raise ConfigurationError(f"the secrets of MCP server {server_id} belong to another row")
    headers = data.get("headers") or {}
    token = data.get("bearer_token")
    return Secrets(
        {str(k): str(v) for k, v in headers.items()},
        token if isinstance(token, str) else None,
    )


def reencrypt(ring: MultiFernet, blob: bytes) -> bytes:
    """The same secrets under the first (newest) key: key rotation, row by row."""
    try:
        return ring.rotate(bytes(blob))
    except InvalidToken as exc:
        raise ConfigurationError(
            f"MCP secrets do not decrypt with any key of {ENV_NAME}: cannot rotate"
        ) from exc
