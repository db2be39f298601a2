"""Structured output (``response_format``) pieces shared by the adapters.

Each vendor gets JSON answers its own way: OpenAI natively (``response_format``),
Anthropic through a forced *output tool* whose input is the answer, Ollama through
``format``, the local model through a grammar. What they share is here: the prompt
instruction (for vendors that need or benefit from one) and the output tool's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable

from ai_agents.providers.base import ResponseFormat

__all__ = ["json_instruction", "mentions_json", "output_tool_name"]

_TOOL_NAME_CHARS = re.compile(r"[^a-zA-Z0-9_-]+")
#: Anthropic's tool-name limit (``^[a-zA-Z0-9_-]{1,64}$`` for client tools).
_MAX_TOOL_NAME = 64


def json_instruction(fmt: ResponseFormat, *, tools: bool = False) -> str:
    """One system-prompt paragraph asking for the answer as JSON (with the schema).

    ``tools``: tools are offered too, so the instruction is about the final answer only.
    """
    when = "When you give your final answer (not a tool call), answer" if tools else "Answer"
    if fmt.type == "json_schema" and fmt.schema is not None:
        schema = json.dumps(fmt.schema, ensure_ascii=False, separators=(", ", ": "))
        about = f" ({fmt.description.strip()})" if fmt.description else ""
        return (
            f"{when} with only JSON{about}, no other text. It must be valid against this "
            f"JSON schema: {schema}"
        )
    return f"{when} with only a JSON object, no other text."


def mentions_json(texts: Iterable[str]) -> bool:
    """Whether any of *texts* contains the word "json" (in any case)."""
    return any("json" in text.lower() for text in texts)


def output_tool_name(fmt: ResponseFormat, taken: Collection[str] = ()) -> str:
    """A tool name for the answer in *fmt*, valid for Anthropic and not in *taken*."""
    base = _TOOL_NAME_CHARS.sub("_", fmt.name).strip("_")[:_MAX_TOOL_NAME] or "response"
    name = base
    n = 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base[: _MAX_TOOL_NAME - len(suffix)] + suffix
    return name
