"""Tenant scoping: every query goes through :func:`visible` so no tenant sees another's rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, true


@dataclass(frozen=True, slots=True)
class Scope:
    """The caller's tenant. ``tenant_id=None`` is the admin scope that sees every tenant."""

    tenant_id: str | None

    @property
    def is_admin(self) -> bool:
        return self.tenant_id is None

    def visible(self, column: Any) -> ColumnElement[bool]:
        return true() if self.tenant_id is None else column == self.tenant_id

    def owner(self, requested: str | None, default: str) -> str:
        """Tenant that new rows belong to: the caller's own, or (admin only) the requested."""
        if self.tenant_id is not None:
            return self.tenant_id
        return requested or default
