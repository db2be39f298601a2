"""The part of OpenAI's published OpenAPI document that ``/v1`` serves, vendored.

``tests/data/openai-openapi-v1.json`` holds the operations this server implements from
``openapi.json`` of https://github.com/openai/openai-openapi (the commit is recorded in
``info.x-vendored-from``), with every component they reference. Regenerate it when the
server serves more of the API:

    python -m tests.openai_spec /path/to/openai-openapi/openapi.json <commit>

It is the reference the schemathesis test of ``/v1`` generates requests from and checks
answers against (``tests/integration/test_openai_compat_schemathesis.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

VENDORED = Path(__file__).parent / "data" / "openai-openapi-v1.json"

#: (path, method) of every operation ``/v1`` serves.
SERVED: tuple[tuple[str, str], ...] = (
    ("/assistants", "get"),
    ("/assistants", "post"),
    ("/assistants/{assistant_id}", "get"),
    ("/assistants/{assistant_id}", "post"),
    ("/assistants/{assistant_id}", "delete"),
    ("/threads", "post"),
    ("/threads/{thread_id}", "get"),
    ("/threads/{thread_id}", "post"),
    ("/threads/{thread_id}", "delete"),
    ("/threads/{thread_id}/messages", "get"),
    ("/threads/{thread_id}/messages", "post"),
    ("/threads/{thread_id}/messages/{message_id}", "get"),
    ("/threads/{thread_id}/messages/{message_id}", "post"),
    ("/threads/{thread_id}/messages/{message_id}", "delete"),
    ("/threads/runs", "post"),
    ("/threads/{thread_id}/runs", "get"),
    ("/threads/{thread_id}/runs", "post"),
    ("/threads/{thread_id}/runs/{run_id}", "get"),
    ("/threads/{thread_id}/runs/{run_id}", "post"),
    ("/threads/{thread_id}/runs/{run_id}/cancel", "post"),
    ("/threads/{thread_id}/runs/{run_id}/steps", "get"),
    ("/threads/{thread_id}/runs/{run_id}/steps/{step_id}", "get"),
    ("/threads/{thread_id}/runs/{run_id}/submit_tool_outputs", "post"),
    ("/chat/completions", "post"),
    ("/models", "get"),
    ("/models/{model}", "get"),
    ("/files", "get"),
    ("/files", "post"),
    ("/files/{file_id}", "get"),
    ("/files/{file_id}", "delete"),
    ("/files/{file_id}/content", "get"),
    ("/vector_stores", "get"),
    ("/vector_stores", "post"),
    ("/vector_stores/{vector_store_id}", "get"),
    ("/vector_stores/{vector_store_id}", "post"),
    ("/vector_stores/{vector_store_id}", "delete"),
    ("/vector_stores/{vector_store_id}/files", "get"),
    ("/vector_stores/{vector_store_id}/files", "post"),
    ("/vector_stores/{vector_store_id}/files/{file_id}", "get"),
    ("/vector_stores/{vector_store_id}/files/{file_id}", "delete"),
    ("/vector_stores/{vector_store_id}/file_batches", "post"),
    ("/vector_stores/{vector_store_id}/file_batches/{batch_id}", "get"),
    ("/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel", "post"),
    ("/vector_stores/{vector_store_id}/file_batches/{batch_id}/files", "get"),
    ("/responses", "post"),
    ("/responses/{response_id}", "get"),
    ("/responses/{response_id}", "delete"),
    ("/responses/{response_id}/input_items", "get"),
    ("/conversations", "post"),
    ("/conversations/{conversation_id}", "get"),
    ("/conversations/{conversation_id}", "post"),
    ("/conversations/{conversation_id}", "delete"),
    ("/conversations/{conversation_id}/items", "get"),
    ("/conversations/{conversation_id}/items", "post"),
    ("/conversations/{conversation_id}/items/{item_id}", "get"),
    ("/conversations/{conversation_id}/items/{item_id}", "delete"),
)


def _refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            found |= _refs(value)
    elif isinstance(node, list):
        for value in node:
            found |= _refs(value)
    return found


def _resolve(spec: dict[str, Any], ref: str) -> Any:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def subset(spec: dict[str, Any], commit: str) -> dict[str, Any]:
    """*spec* reduced to :data:`SERVED` and the components they reference."""
    paths: dict[str, Any] = {}
    for path, method in SERVED:
        item = spec["paths"][path]
        kept = paths.setdefault(path, {k: v for k, v in item.items() if k == "parameters"})
        kept[method] = item[method]
    components: dict[str, dict[str, Any]] = {}
    pending = _refs(paths)
    seen: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in seen:
            continue
        seen.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = _resolve(spec, ref)
        components.setdefault(kind, {})[name] = node
        pending |= _refs(node) - seen
    security = spec.get("components", {}).get("securitySchemes")
    if security:
        components["securitySchemes"] = security
    return {
        "openapi": spec["openapi"],
        "info": {
            **spec["info"],
            "x-vendored-from": f"https://github.com/openai/openai-openapi/blob/{commit}/openapi.json",
        },
        "servers": spec.get("servers", []),
        "security": spec.get("security", []),
        "paths": paths,
        "components": components,
    }


def load() -> dict[str, Any]:
    return json.loads(VENDORED.read_text())  # type: ignore[no-any-return]


if __name__ == "__main__":
    source, commit = sys.argv[1], sys.argv[2]
    full = json.loads(Path(source).read_text())
    VENDORED.write_text(json.dumps(subset(full, commit), indent=1, sort_keys=True) + "\n")
    print(f"wrote {VENDORED} ({VENDORED.stat().st_size} bytes)")
