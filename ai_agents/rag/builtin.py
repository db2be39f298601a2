"""Import this module (``AI_AGENTS_TOOL_MODULES=ai_agents.rag.builtin``) to put the
document tools in the process-wide default tool registry, configured from the environment
(see :mod:`ai_agents.rag.setup`). Importing it twice registers them once."""

from __future__ import annotations

from ai_agents.rag.service import DocumentService
from ai_agents.rag.setup import register_from_env
from ai_agents.tools.registry import default_registry

service: DocumentService = register_from_env(default_registry())
