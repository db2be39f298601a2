"""An MCP ``tools/call`` result as the text the model sees.

Text blocks are joined; without text, ``structuredContent`` is serialised as JSON;
images, audio, links and binary resources are described in a short bracketed line (the
model gets no bytes). ``isError`` becomes a tool error.
"""

from __future__ import annotations

import base64
import binascii
import json

import mcp_types as types

from ai_agents.tools.decorator import ToolOutcome

#: The longest text an MCP tool result gives the model (a larger one is cut).
MAX_RESULT_CHARS = 100_000


def _size(data: str) -> str:
    try:
        return f"{len(base64.b64decode(data, validate=False))} bytes"
    except (binascii.Error, ValueError):
        return f"{len(data)} base64 characters"


def describe_block(block: types.ContentBlock) -> str:
    """One content block as text."""
    if isinstance(block, types.TextContent):
        return block.text
    if isinstance(block, types.ImageContent):
        return f"[image: {block.mime_type}, {_size(block.data)}]"
    if isinstance(block, types.AudioContent):
        return f"[audio: {block.mime_type}, {_size(block.data)}]"
    if isinstance(block, types.ResourceLink):
        kind = f", {block.mime_type}" if block.mime_type else ""
        return f"[resource link: {block.uri} ({block.name}{kind})]"
    if isinstance(block, types.EmbeddedResource):
        resource = block.resource
        if isinstance(resource, types.TextResourceContents):
            return resource.text
        kind = resource.mime_type or "binary"
        return f"[resource: {resource.uri}, {kind}, {_size(resource.blob)}]"
    return f"[{getattr(block, 'type', 'unknown')} content]"


def describe_result(result: types.CallToolResult) -> ToolOutcome:
    parts = [describe_block(block) for block in result.content]
    has_text = any(
        isinstance(b, types.TextContent)
        or (
            isinstance(b, types.EmbeddedResource)
            and isinstance(b.resource, types.TextResourceContents)
        )
        for b in result.content
    )
    if not has_text and result.structured_content is not None:
        parts.insert(0, json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(p for p in parts if p) or ("(no output)" if not result.is_error else "Error")
    if len(text) > MAX_RESULT_CHARS:
        text = (
            text[:MAX_RESULT_CHARS] + f"\n[... cut: {len(text) - MAX_RESULT_CHARS} more characters]"
        )
    if result.is_error and not text.startswith("Error"):
        text = f"Error: {text}"
    return ToolOutcome(text, is_error=bool(result.is_error))
