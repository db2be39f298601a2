"""Tools by name. Agents refer to tools by name; unknown names fail at create/update time.

Processes that run agents (API servers, workers) import the modules that define tools
named in ``AI_AGENTS_TOOL_MODULES`` (comma-separated), so a tool defined once is
available wherever its agent runs.

Built-in tools (:func:`builtin_tools`: ``file_search``) resolve in every registry, so
every process that runs agents has them; a registered tool of the same name wins.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterable

from ai_agents.errors import ConfigurationError, UnknownToolError, ValidationError
from ai_agents.tools.decorator import Tool


class ToolRegistry:
    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}
        self._lock = threading.Lock()

    def register(self, tool: Tool, *, replace: bool = True) -> Tool:
        with self._lock:
            if not replace and tool.name in self._tools:
                raise ValidationError(f"a tool named {tool.name!r} is already registered")
            self._tools[tool.name] = tool
        return tool

    def unregister(self, name: str) -> None:
        with self._lock:
            self._tools.pop(name, None)

    def get(self, name: str) -> Tool:
        try:
            return self._tools[name]
        except KeyError:
            raise UnknownToolError(
                self._unknown_message([name]), details={"unknown": [name]}
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return sorted(self._tools)

    def resolve(self, names: Iterable[str]) -> list[Tool]:
        """The tools for an agent's tool names (registered, else built-in); every unknown
        name is reported at once."""
        names = list(names)
        builtin = builtin_tools()
        missing = [n for n in names if n not in self._tools and n not in builtin]
        if missing:
            raise UnknownToolError(self._unknown_message(missing), details={"unknown": missing})
        return [self._tools.get(n) or builtin[n] for n in names]

    def _unknown_message(self, missing: list[str]) -> str:
        # For the developer reading a traceback: the registered names help spot a typo.
        # ``details["unknown"]`` holds the missing names alone, for callers (the REST
        # API) that must not reveal the other tools.
        known = ", ".join(self.names()) or "none"
        return (
            f"unknown tool(s): {', '.join(missing)} (registered: {known}). Define them with "
            "@tool, or list their modules in AI_AGENTS_TOOL_MODULES."
        )


_builtin: dict[str, Tool] | None = None


def builtin_tools() -> dict[str, Tool]:
    """The tools every registry resolves without registering them (``file_search``)."""
    global _builtin
    if _builtin is None:
        from ai_agents.files.search import FILE_SEARCH_TOOL

        _builtin = {FILE_SEARCH_TOOL.name: FILE_SEARCH_TOOL}
    return _builtin


_default: ToolRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> ToolRegistry:
    """The process-wide registry that ``@tool`` uses; imports AI_AGENTS_TOOL_MODULES once."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ToolRegistry()
                _import_tool_modules()
    return _default


def _import_tool_modules() -> None:
    from ai_agents.settings import load_settings

    for module in load_settings().tool_modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigurationError(
                f"AI_AGENTS_TOOL_MODULES names {module!r}, which cannot be imported: {exc}"
            ) from exc
