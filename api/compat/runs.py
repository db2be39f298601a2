"""Placeholder: filled in by the runs slice."""

from __future__ import annotations

from typing import Any

HANDLERS: list[Any] = []
