"""Issue 15, item 2: the API documentation works offline and says what the API does.

Over real HTTP: the page at /api/v1/docs loads Swagger UI from this server only; the
document has readable unique operation ids, no generated (random) examples, each
operation's own errors, typed ``settings.routing`` and ``memory_config``, and the
streamed runs' events; what the live API answers agrees with it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from ai_agents.api.config import ApiConfig
from ai_agents.api.sse_docs import EVENTS, EXAMPLE_STREAM
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.testing import FunctionProvider

JSON = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    provider = FunctionProvider(lambda request: "Paris is the capital of France.")
    with running_api(settings, providers={"scripted": provider}, config=ApiConfig()) as running:
        yield running


@pytest.fixture
def document(api: RunningApi) -> JSON:
    r = httpx.get(f"{api.api}/docs/openapi.json", timeout=30)
    assert r.status_code == 200
    body: JSON = r.json()
    return body


def operations(document: JSON) -> dict[str, tuple[str, str, JSON]]:
    """operationId -> (method, path, operation)."""
    found = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                found[op["operationId"]] = (method, path, op)
    return found


def test_the_docs_page_loads_swagger_ui_from_this_server_only(api: RunningApi) -> None:
    page = httpx.get(f"{api.api}/docs", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle(" in html
    urls = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert len(urls) == 4, urls  # the bundle, the preset, the stylesheet, the favicon
    assert "://" not in html.replace("http://127.0.0.1", ""), "an absolute URL in the page"
    expected_types = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}
    for url in urls:
        assert url.startswith("/api/v1/docs/assets/"), url
        asset = httpx.get(f"{api.url}{url}", timeout=30)
        assert asset.status_code == 200, url
        kind = expected_types[url[url.rindex(".") :]]
        assert asset.headers["content-type"].startswith(kind), (url, asset.headers)
        assert len(asset.content) > 500, url
    bundle = httpx.get(f"{api.api}/docs/assets/swagger-ui-bundle.js", timeout=30).text
    # Swagger UI 5 renders OpenAPI 3.1 (what this server publishes); 4 shows an error.
    assert document_version(api) == "3.1.0" and "3.1" in bundle and "SwaggerUIBundle" in bundle
    assert httpx.get(f"{api.api}/docs/assets/index.html", timeout=30).status_code == 404
    assert httpx.get(f"{api.api}/docs/assets/..%2Fopenapi.json", timeout=30).status_code == 404


def document_version(api: RunningApi) -> str:
    version: str = httpx.get(f"{api.api}/docs/openapi.json", timeout=30).json()["openapi"]
    return version


def test_operation_ids_are_readable_and_unique(document: JSON) -> None:
    ids = [
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method in METHODS
    ]
    assert len(ids) == len(set(ids)) >= 40
    for op_id in ids:
        assert re.fullmatch(r"[a-z]+(?:[A-Z][a-z0-9]*)*", op_id), op_id
        assert "ApiV1" not in op_id and "Api" not in op_id, op_id
    found = operations(document)
    assert found["listMessages"][:2] == ("get", "/api/v1/threads/{thread_id}/messages")
    assert found["createRun"][:2] == ("post", "/api/v1/threads/{thread_id}/runs")
    assert found["archiveThread"][:2] == ("post", "/api/v1/threads/{thread_id}/archive")
    assert found["getHealth"][:2] == ("get", "/api/v1/health")
    # /v1 (OpenAI-compatible) is documented by OpenAI's own document, not this one.
    assert not [p for p in document["paths"] if not p.startswith("/api/v1/")]


def _examples(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """Every ``example``/``examples`` value in the document (not a property so named)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("example", "examples") and not where.endswith("/properties"):
                yield f"{where}/{key}", value
            else:
                yield from _examples(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _examples(value, f"{where}/{i}")


def test_no_generated_examples_only_the_ones_written(document: JSON) -> None:
    found = list(_examples(document))
    stream_example = {
        "answer": {"summary": "A streamed answer (done shortened)", "value": EXAMPLE_STREAM}
    }
    for where, value in found:
        assert where.endswith("/text/event-stream/examples"), (where, value)
        assert value == stream_example, where
    assert len(found) == 2  # createRun and submitToolOutputs


def _errors(op: JSON) -> set[int]:
    return {int(s) for s in op["responses"] if int(s) >= 400}


def test_each_operation_documents_its_own_errors(api: RunningApi, document: JSON) -> None:
    found = operations(document)
    assert _errors(found["getThread"][2]) == {400, 401, 404, 429, 503}
    assert _errors(found["listModels"][2]) == {400, 401, 429, 503}
    assert _errors(found["getHealth"][2]) == {503}
    assert _errors(found["createRun"][2]) == {*(400, 401, 404, 409, 413, 415, 422, 429, 502, 503)}
    assert _errors(found["createThread"][2]) == {400, 401, 404, 413, 415, 422, 429, 503}
    assert _errors(found["listKeys"][2]) == {400, 401, 403, 422, 429, 503}
    for op_id, (_method, _path, op) in found.items():
        errors = _errors(op)
        if op_id != "getHealth":
            assert {400, 401, 429, 503} <= errors, op_id
        if 409 in errors or 502 in errors:
            assert op_id in {"createRun", "submitToolOutputs", "addMcpServer"}, op_id
        if 403 in errors:
            assert op_id in {
                *("createAgent", "getUsage", "getMetrics", "createKey", "listKeys", "getKey"),
                *("revokeKey", "getMemory", "putMemory", "deleteMemory", "getMemoryKey"),
                *("putMemoryKey", "deleteMemoryKey"),
            }, op_id
        if 415 in errors:
            assert "requestBody" in op, op_id
        for status in errors - ({503} if op_id == "getHealth" else set()):
            ref = op["responses"][str(status)]["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error"

    # What the documented statuses say is what the live API answers.
    key = api.create_key("docs")
    with httpx.Client(base_url=api.api, timeout=30) as c:
        assert c.get(f"/threads/{uuid.uuid4()}").status_code == 401
        c.headers["Authorization"] = f"Bearer {key}"
        assert c.get(f"/threads/{uuid.uuid4()}").status_code == 404
        assert c.get("/keys").status_code == 403
        r = c.post("/threads", json={"agent_id": str(uuid.uuid4())})
        assert r.status_code == 404
        assert c.get("/models", params={"nope": "1"}).status_code == 400


def test_settings_routing_and_memory_config_are_typed(api: RunningApi, document: JSON) -> None:
    schemas = document["components"]["schemas"]

    def ref_of(prop: JSON) -> str:
        refs = [str(s["$ref"]) for s in prop.get("oneOf", [prop]) if "$ref" in s]
        assert len(refs) == 1, prop
        return refs[0].rsplit("/", 1)[-1]

    assert ref_of(schemas["AgentCreate"]["properties"]["memory_config"]) == "MemoryConfig"
    assert ref_of(schemas["AgentUpdate"]["properties"]["memory_config"]) == "MemoryConfig"
    assert ref_of(schemas["AgentCreate"]["properties"]["settings"]) == "AgentSettings"
    assert ref_of(schemas["AgentSettings"]["properties"]["routing"]) == "RoutingSettings"
    assert set(schemas["MemoryConfig"]["properties"]) == {
        *("max_messages", "preserve_first", "summarize_batch"),
        *("summary_provider", "summary_model"),
    }
    routing = schemas["RoutingSettings"]
    assert set(routing["properties"]) == {
        *("local", "cloud", "strong", "prefer", "privacy_patterns", "allow_xml_tools"),
        *("token_budget", "complexity_threshold", "force_provider"),
    }
    assert ref_of(routing["properties"]["local"]) == "RoutingTarget"
    for name in ("MemoryConfig", "RoutingSettings", "RoutingTarget"):
        assert schemas[name]["additionalProperties"] is False, name

    key = api.create_key("docs")
    agent = {"name": "A", "role": "r", "provider": "scripted", "model": "m"}
    with httpx.Client(
        base_url=api.api, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as c:
        r = c.post("/agents", json={**agent, "memory_config": {"max_messages": 7}})
        assert r.status_code == 201, r.text
        assert r.json()["memory_config"] == {"max_messages": 7}
        r = c.post("/agents", json={**agent, "memory_config": {"max_mesages": 7}})
        assert r.status_code == 400 and "max_mesages" in r.text
        r = c.post("/agents", json={**agent, "memory_config": {"preserve_first": 2}})
        assert r.status_code == 422  # a key of another strategy: the store names it
        routing = {"local": {"provider": "scripted", "model": "m"}, "token_budget": 100}
        r = c.post("/agents", json={**agent, "settings": {"routing": routing}})
        assert r.status_code == 201, r.text
        assert r.json()["settings"]["routing"] == routing
        r = c.post("/agents", json={**agent, "settings": {"routing": {"locale": {}}}})
        assert r.status_code == 400 and "locale" in r.text


def test_streamed_runs_document_their_events(api: RunningApi, document: JSON) -> None:
    found = operations(document)
    schemas = document["components"]["schemas"]
    for op_id in ("createRun", "submitToolOutputs"):
        content = found[op_id][2]["responses"]["200"]["content"]
        stream = content["text/event-stream"]["schema"]
        for name, (schema, _when) in EVENTS.items():
            assert f"`{name}`" in stream["description"] and schema in stream["description"]
            assert schema in schemas, schema
    assert schemas["TextDeltaEvent"]["required"] == ["text"]

    key = api.create_key("docs")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api.api, timeout=30, headers=headers) as c:
        agent = c.post(
            "/agents", json={"name": "A", "role": "r", "provider": "scripted"} | {"model": "m"}
        ).json()
        thread = c.post("/threads", json={"agent_id": agent["id"]}).json()
        with connect_sse(
            c, "POST", f"/threads/{thread['id']}/runs", json={"input": "hi", "stream": True}
        ) as source:
            assert source.response.headers["content-type"].startswith("text/event-stream")
            names = [event.event for event in source.iter_sse()]
    assert names[0] == "run_started" and names[-1] == "done" and "text_delta" in names
    assert set(names) <= set(EVENTS)
