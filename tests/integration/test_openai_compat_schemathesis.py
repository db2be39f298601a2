"""Issue 13, acceptances 3 and 4: schemathesis over ``/v1`` from OpenAI's own spec.

Requests are generated from OpenAI's published OpenAPI document (the operations ``/v1``
serves, vendored by :mod:`tests.openai_spec`), valid ones and deliberately invalid ones,
half of them aimed at objects that exist (an assistant, a thread with a message, a run
and its step) so they reach the store. Every answer must pass: no 5xx, the documented
content type, a body that matches **OpenAI's** schema for the status (the SDK reads
these), invalid data refused with a 4xx.

OpenAI's document lists only the success status of most operations, so the status check
of the ``/api/v1`` schemathesis test is left out here: a 400, 404 or 409 is an error
answer in OpenAI's shape, checked by the SDK tests.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import CheckContext, not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.openapi.checks import DiscriminatorMismatch, JsonSchemaError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
)

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.embeddings import HashingEmbedder
from ai_agents.providers.registry import ModelLimits, get_registry
from ai_agents.rag.setup import enable_documents
from ai_agents.testing import FunctionProvider
from ai_agents.tools.registry import ToolRegistry
from tests.openai_spec import SERVED, load

EXAMPLES = int(os.environ.get("API_SCHEMATHESIS_EXAMPLES", "10"))
MIN_REQUESTS = int(os.environ.get("OPENAI_SCHEMATHESIS_MIN_REQUESTS", "400"))

#: Spec defect 1 (openai-openapi at the vendored commit): the item unions
#: ``#/components/schemas/ConversationItem`` and ``#/components/schemas/ItemResource`` declare
#: ``discriminator: {propertyName: type}`` with no ``mapping``, so by OpenAPI's implicit
#: mapping a ``type`` must be a branch's *schema name* (``Message``, ``OutputMessage``,
#: ``FunctionToolCallResource``...), while every branch's own ``type`` enum is the wire tag
#: (``message``, ``function_call``...): no valid item of any kind passes schemathesis'
#: discriminator check (ST111), and in ``ItemResource`` two branches (``InputMessageResource``,
#: ``OutputMessage``) share ``message``, so no mapping could even be written. For the
#: operations answering with these unions, that one check is dropped; the JSON-schema
#: validation of the items against the union's ``oneOf`` branches (ST108) still runs.
UNNAMED_ITEM_TAGS = frozenset(
    {
        "GET /conversations/{conversation_id}/items",
        "POST /conversations/{conversation_id}/items",
        "GET /conversations/{conversation_id}/items/{item_id}",
        "GET /responses/{response_id}/input_items",
    }
)


#: Spec defect 4: every cursor list (``ListFilesResponse``, ``ListVectorStoresResponse``,
#: ``ListVectorStoreFilesResponse``, ``ListAssistantsResponse``...) *requires* ``first_id``
#: and ``last_id`` typed as non-nullable strings, which an empty page cannot have: it has no
#: first or last object. OpenAI answers ``null`` there (``/v1`` too, see ``api.compat.lists``);
#: leaving them out would break ``required``. A ``null`` id is excused on an empty page only.
EMPTY_PAGE_IDS = frozenset({"first_id", "last_id"})


def _excused(failure: Exception, case: schemathesis.Case[Any], response: Any) -> bool:
    """Whether *failure* is one of the spec's own defects 1 or 4 rather than ours."""
    if isinstance(failure, DiscriminatorMismatch):
        return case.operation.label in UNNAMED_ITEM_TAGS
    if isinstance(failure, JsonSchemaError) and failure.instance is None:
        path = list(failure.instance_path)
        if len(path) == 1 and path[0] in EMPTY_PAGE_IDS:
            body = response.json()
            return isinstance(body, dict) and body.get("data") == []
    return False


@schemathesis.check
def response_schema_conformance_but_spec_defects(
    ctx: CheckContext, response: Any, case: schemathesis.Case[Any]
) -> bool | None:
    """``response_schema_conformance``, but the failures :func:`_excused` (defects 1, 4)."""
    try:
        return response_schema_conformance(ctx, response, case)
    except FailureGroup as group:
        rest = [f for f in group.exceptions if not _excused(f, case, response)]
        if len(rest) == len(group.exceptions):
            raise
        if len(rest) > 1:
            raise FailureGroup(rest) from None
        if rest:
            raise rest[0] from None
        return None
    except Exception as failure:
        if _excused(failure, case, response):
            return None
        raise


CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    content_type_conformance,
    response_schema_conformance_but_spec_defects,
    negative_data_rejection,
]
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(max(300, EXAMPLES * 30)),
    pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning"),
]


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    get_registry().register(
        "scripted", "roomy", ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3, 15)
    )
    provider = FunctionProvider(lambda request: f"echo: {request.messages[-1].text[:50]}")
    config = ApiConfig(max_body_bytes=256 * 1024, default_rpm=0)
    with running_api(settings, providers={"scripted": provider}, config=config) as running:
        # Vector stores index through the document pipeline (a deterministic embedder).
        enable_documents(
            running.store, embedder=HashingEmbedder(), registry=ToolRegistry(), share_embedder=False
        )
        yield running


def _seed(api: RunningApi, auth: dict[str, str]) -> dict[str, str]:
    """An assistant, a thread with a message, a finished run and its step."""
    base = f"{api.url}/v1"
    with requests.Session() as s:
        s.headers.update(auth)
        assistant = s.post(
            f"{base}/assistants", json={"model": "scripted/roomy"}, timeout=30
        ).json()
        thread = s.post(
            f"{base}/threads",
            json={"messages": [{"role": "user", "content": "hello"}]},
            timeout=30,
        ).json()
        run = s.post(
            f"{base}/threads/{thread['id']}/runs",
            json={"assistant_id": assistant["id"]},
            timeout=30,
        ).json()
        deadline = time.monotonic() + 30
        while run["status"] not in ("completed", "failed") and time.monotonic() < deadline:
            time.sleep(0.05)
            run = s.get(f"{base}/threads/{thread['id']}/runs/{run['id']}", timeout=30).json()
        assert run["status"] == "completed", run
        steps = s.get(f"{base}/threads/{thread['id']}/runs/{run['id']}/steps", timeout=30).json()
        messages = s.get(f"{base}/threads/{thread['id']}/messages", timeout=30).json()
        response = s.post(
            f"{base}/responses", json={"model": "scripted/roomy", "input": "hi"}, timeout=30
        ).json()
        conversation = s.post(
            f"{base}/conversations",
            json={"items": [{"type": "message", "role": "user", "content": "hello"}]},
            timeout=30,
        ).json()
        items = s.get(f"{base}/conversations/{conversation['id']}/items", timeout=30).json()
        upload = s.post(
            f"{base}/files",
            files={"file": ("notes.md", b"# Notes\n\nCheckout is at 11 am.\n")},
            data={"purpose": "assistants"},
            timeout=30,
        ).json()
        store = s.post(
            f"{base}/vector_stores", json={"name": "fuzz", "file_ids": [upload["id"]]}, timeout=30
        ).json()
        batch = s.post(
            f"{base}/vector_stores/{store['id']}/file_batches",
            json={"file_ids": [upload["id"]]},
            timeout=30,
        ).json()
    return {
        "file_id": upload["id"],
        "vector_store_id": store["id"],
        "batch_id": batch["id"],
        "response_id": response["id"],
        "conversation_id": conversation["id"],
        "item_id": items["data"][0]["id"],
        "assistant_id": assistant["id"],
        "thread_id": thread["id"],
        "run_id": run["id"],
        "step_id": steps["data"][0]["id"],
        "message_id": messages["data"][-1]["id"],
        "model": "scripted/roomy",
    }


def _without_defect_2(spec: dict[str, Any]) -> dict[str, Any]:
    """*spec* with the 404 of ``DELETE /responses/{response_id}`` enveloped.

    Spec defect 2: that 404 (the only 404 the document describes) is
    ``#/components/schemas/Error``, the *inner* error object, while every OpenAI error body,
    the 429 of the same operation (``ErrorResponse``) included, is ``{"error": Error}``, which
    is what the SDK unwraps (``body.get("error", body)``). ``/v1`` answers every error in
    the envelope, so the check uses ``ErrorResponse`` there.
    """
    media = spec["paths"]["/responses/{response_id}"]["delete"]["responses"]["404"]["content"]
    schema = media["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Error"}, "defect 2 fixed upstream? drop this"
    schema["$ref"] = "#/components/schemas/ErrorResponse"
    return spec


def _without_defect_3(spec: dict[str, Any]) -> dict[str, Any]:
    """*spec* with the 200 of ``GET /files/{file_id}/content`` documented as bytes.

    Spec defect 3: ``downloadFile`` documents its 200 as ``application/json`` with schema
    ``{"type": "string"}``, i.e. a JSON string literal, but the operation returns the file's
    raw bytes (a Markdown or PDF file is not JSON, and quoting it into a JSON string would
    change the bytes); the SDK itself asks for ``Accept: application/binary`` and reads the
    body as binary (``HttpxBinaryResponseContent``). ``/v1`` answers the bytes unchanged as
    ``application/octet-stream``, so the check documents that media type there.
    """
    responses = spec["paths"]["/files/{file_id}/content"]["get"]["responses"]
    content = responses["200"]["content"]
    assert content == {"application/json": {"schema": {"type": "string"}}}, (
        "defect 3 fixed upstream? drop this"
    )
    responses["200"]["content"] = {
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
    }
    return spec


def _without_defect_5(spec: dict[str, Any]) -> dict[str, Any]:
    """*spec* with ``allOf: [X, {nullable: true}]`` written as ``X`` or ``null``.

    Spec defect 5: optional-and-nullable fields (``expires_after`` of
    ``UpdateVectorStoreRequest`` and others) are written ``allOf: [{$ref: X}, {nullable:
    true}]``. OpenAPI 3.0's ``nullable`` only qualifies a ``type`` in its own schema object,
    so this says nothing and ``null`` fails ``X``: read literally, the document forbids the
    ``null`` its own SDK sends (``Optional[...]``) to clear the field. The intent is
    ``X`` or ``null``, and that is what the check uses.
    """
    found = 0

    def fix(node: Any) -> Any:
        nonlocal found
        if isinstance(node, dict):
            parts = node.get("allOf")
            if isinstance(parts, list) and len(parts) == 2 and parts[1] == {"nullable": True}:
                found += 1
                rest = {k: fix(v) for k, v in node.items() if k != "allOf"}
                return {**rest, "anyOf": [fix(parts[0]), {"type": "null"}]}
            return {k: fix(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fix(v) for v in node]
        return node

    fixed: dict[str, Any] = fix(spec)
    assert found, "defect 5 fixed upstream? drop this"
    return fixed


def test_schemathesis_over_v1_from_openais_spec(api: RunningApi) -> None:
    key = api.create_key("fuzz", rate_limit_rpm=0)
    auth = {"Authorization": f"Bearer {key}"}
    rejected = ["400", "401", "404", "405", "409", "413", "415", "429"]
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": rejected}}}
    )
    schema = schemathesis.openapi.from_dict(
        _without_defect_5(_without_defect_3(_without_defect_2(load()))), config=config
    )
    known = _seed(api, auth)
    base_url = f"{api.url}/v1"

    sent = 0
    statuses: Counter[str] = Counter()
    started = time.monotonic()
    failures: list[str] = []
    # Deletes last, the deepest first: aimed at the seeded objects, they would otherwise
    # leave every later operation a 404.
    operations = sorted(
        (result.ok() for result in schema.get_all_operations()),  # type: ignore[union-attr]
        key=lambda op: (op.method.upper() == "DELETE", -len(op.path)),
    )
    with requests.Session() as session:
        for operation in operations:
            params = {p.name for p in operation.path_parameters}
            targets: list[dict[str, str]] = [{}]
            fixed = {k: v for k, v in known.items() if k in params}
            if fixed:
                targets.append(fixed)
            for mode in (
                schemathesis.GenerationMode.POSITIVE,
                schemathesis.GenerationMode.NEGATIVE,
            ):
                for path_parameters in targets:
                    strategy = operation.as_strategy(
                        generation_mode=mode, path_parameters=path_parameters or None
                    )

                    @given(case=strategy)
                    @settings(
                        max_examples=EXAMPLES,
                        deadline=None,
                        database=None,
                        derandomize=True,
                        phases=[Phase.explicit, Phase.generate],
                        suppress_health_check=list(HealthCheck),
                    )
                    def check(case: schemathesis.Case[Any]) -> None:
                        nonlocal sent
                        response = case.call(
                            base_url=base_url, session=session, headers=auth, timeout=60
                        )
                        sent += 1
                        # check() runs within this iteration: operation is the current one.
                        statuses[f"{operation.label} {response.status_code}"] += 1  # noqa: B023
                        case.validate_response(response, checks=CHECKS, headers=auth)

                    try:
                        check()
                    except Unsatisfiable:
                        assert mode is schemathesis.GenerationMode.NEGATIVE
                    except (Exception, BaseExceptionGroup) as exc:  # FailureGroup is a group
                        failures.append(f"{operation.label} [{mode.value}]: {exc}")
    elapsed = time.monotonic() - started
    print(
        f"schemathesis /v1: {sent} requests in {elapsed:.1f}s, {len(failures)} failing operations"
    )
    assert not failures, "\n\n".join(failures)
    assert sent >= MIN_REQUESTS, f"only {sent} requests were generated"
    # Not vacuous: the answers checked against OpenAI's schemas include successes of
    # every kind of object, not only error answers.
    succeeded = {label.rsplit(" ", 1)[0] for label in statuses if label.endswith(" 200")}
    print(f"operations answered 200: {len(succeeded)} of {len(SERVED)}")
    for label in sorted(statuses):
        print(f"  {label}: {statuses[label]}")
    assert len(succeeded) >= len(SERVED) // 2, sorted(succeeded)
