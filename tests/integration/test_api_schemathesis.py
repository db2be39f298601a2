"""Issue 7, acceptance 3: schemathesis against the app's own OpenAPI schema, over real HTTP.

Every operation of the published schema gets generated requests, valid ones (positive)
and deliberately invalid ones (negative), half of them aimed at objects that exist (a
real agent, thread and job id) so they reach the store rather than stopping at a 404.
Each response must pass: no 5xx, a documented status, the documented content type, a
body that matches the documented schema, documented headers present, invalid data
rejected with a 4xx. At least 1,000 requests run (bounded for CI: about a minute).

The unbounded run is ``make schemathesis`` (see docs/api.md): the same test with
``API_SCHEMATHESIS_EXAMPLES`` raised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from ai_agents.api.config import ApiConfig
from ai_agents.api.testing import RunningApi, running_api
from ai_agents.config import Settings
from ai_agents.testing import FunctionProvider

EXAMPLES = int(os.environ.get("API_SCHEMATHESIS_EXAMPLES", "12"))
MIN_REQUESTS = int(os.environ.get("API_SCHEMATHESIS_MIN_REQUESTS", "1000"))
CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
]
# About a minute at the default 12 examples; `make schemathesis` raises EXAMPLES.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(300, EXAMPLES * 20))]


@pytest.fixture
def api(settings: Settings, redis_cleanup: None) -> Iterator[RunningApi]:
    provider = FunctionProvider(lambda request: f"echo: {request.messages[-1].text[:50]}")
    config = ApiConfig(max_body_bytes=256 * 1024, default_rpm=0)
    with running_api(settings, providers={"scripted": provider}, config=config) as running:
        yield running


def _seed(api: RunningApi, auth: dict[str, str]) -> dict[str, str]:
    """A real agent, thread (with messages and a run) and user, so cases can hit existing
    objects."""
    with requests.Session() as s:
        s.headers.update(auth)
        agent = s.post(
            f"{api.api}/agents",
            json={"name": "Fuzz", "role": "r", "provider": "scripted", "model": "m"},
            timeout=30,
        ).json()
        thread = s.post(
            f"{api.api}/threads", json={"agent_id": agent["id"], "user_id": "u1"}, timeout=30
        ).json()
        r = s.post(f"{api.api}/threads/{thread['id']}/runs", json={"input": "hi"}, timeout=30)
        assert r.status_code == 200, r.text
    return {
        "agent_id": agent["id"],
        "thread_id": thread["id"],
        "run_id": r.json()["run_id"],
        "user_id": "u1",
    }


def test_schemathesis_no_5xx_no_schema_violations(api: RunningApi) -> None:
    admin = api.create_key("fuzz", admin=True, rate_limit_rpm=0)
    auth = {"Authorization": f"Bearer {admin}"}
    with requests.Session() as s:
        raw = s.get(f"{api.api}/docs/openapi.json", timeout=30).json()
    # An oversized invalid body is rightly refused with 413 (body limit) before validation.
    rejected = ["400", "401", "403", "404", "405", "409", "413", "415", "422", "429"]
    config = schemathesis.Config.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": rejected}}}
    )
    schema = schemathesis.openapi.from_dict(raw, config=config)
    known = _seed(api, auth)

    sent = 0
    started = time.monotonic()
    failures: list[str] = []
    with requests.Session() as session:
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]
            # Never aim the key-management operations at real ids: revoking the admin key
            # would end the run.
            targets: list[dict[str, str]] = [{}]
            params = {p.name for p in operation.path_parameters}
            fixed = {k: v for k, v in known.items() if k in params}
            if fixed and "key_id" not in params:
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
                            base_url=api.url, session=session, headers=auth, timeout=30
                        )
                        sent += 1
                        case.validate_response(response, checks=CHECKS, headers=auth)

                    try:
                        check()
                    except Unsatisfiable:
                        assert mode is schemathesis.GenerationMode.NEGATIVE  # nothing to negate
                    except Exception as exc:
                        failures.append(f"{operation.label} [{mode.value}]: {exc}")
    elapsed = time.monotonic() - started
    print(f"schemathesis: {sent} requests in {elapsed:.1f}s, {len(failures)} failing operations")
    assert not failures, "\n\n".join(failures)
    assert sent >= MIN_REQUESTS, f"only {sent} requests were generated"
