"""Auto-routing rules (issue 4, acceptance 4: the table-driven part) and their validation."""

from __future__ import annotations

from typing import Any

import pytest

from ai_agents.errors import ProviderUnavailable, ValidationError
from ai_agents.providers.routing import (
    DEFAULT_PRIVACY_PATTERNS,
    NoEligibleProvider,
    RoutingInput,
    RoutingPolicy,
    Target,
    complexity_score,
    decide,
    plan_run,
    validate_agent_routing,
)

LOCAL = Target("ollama", "gemma2:2b")  # no native tools
LOCAL_TOOLS = Target("ollama", "llama3.1:8b")  # native tools
CLOUD = Target("openai", "gpt-4o-mini")
STRONG = Target("openai", "gpt-4o")
BACKUP = Target("anthropic", "claude-3-5-haiku-20241022")

COMPLEX = (
    "Please analyze and compare the architecture, explain the algorithm design, evaluate the "
    "implementation and optimize the technical details in a comprehensive way."
)
BASE_POLICY: dict[str, Any] = {
    "local": LOCAL.to_json(),
    "cloud": CLOUD.to_json(),
    "strong": STRONG.to_json(),
    "token_budget": 1000,
    "complexity_threshold": 0.5,
}


def is_local(provider: str) -> bool:
    return provider in {"ollama", "local"}


def native_tools(target: Target) -> bool:
    return target.provider != "ollama" or target.model.startswith("llama3.1")


def policy(**changes: Any) -> RoutingPolicy:
    return RoutingPolicy.parse({**BASE_POLICY, **changes}, is_local=is_local)


# (case id, policy changes, input, fallbacks, expected target, expected factors,
#  expected targets after the first, expected skipped (provider, reason))
Case = tuple[
    str, dict[str, Any], RoutingInput, list[Target], Target, list[str], list[Target],
    list[tuple[str, str]],
]  # fmt: skip
CASES: list[Case] = [
    ("default_prefers_local", {}, RoutingInput(text="hi"), [], LOCAL, ["default"], [], []),
    (
        "privacy_local_only",
        {},
        RoutingInput(text="my password is hunter2"),
        [CLOUD, LOCAL_TOOLS, BACKUP],
        LOCAL,
        ["privacy"],
        [LOCAL_TOOLS],
        [("openai", "privacy_local_only"), ("anthropic", "privacy_local_only")],
    ),
    (
        "privacy_in_history",
        {},
        RoutingInput(text="and now?", history=["the api key is sk-123"]),
        [],
        LOCAL,
        ["privacy"],
        [],
        [],
    ),
    (
        "privacy_beats_force",
        {"force_provider": "cloud"},
        RoutingInput(text="SSN 123-45-6789"),
        [],
        LOCAL,
        ["privacy", "force_provider_ignored"],
        [],
        [],
    ),
    (
        "privacy_beats_tools",
        {},
        RoutingInput(text="reset my password", tools_required=True),
        [],
        LOCAL,
        ["privacy"],
        [],
        [],
    ),
    (
        "custom_patterns_replace_defaults",
        {"privacy_patterns": {"patient": r"\bpatient\b"}},
        RoutingInput(text="my password is hunter2"),
        [],
        LOCAL,
        ["default"],
        [],
        [],
    ),
    (
        "custom_pattern_matches",
        {"privacy_patterns": [r"\bpatient\b"], "prefer": "cloud"},
        RoutingInput(text="The PATIENT has a fever"),
        [],
        LOCAL,
        ["privacy"],
        [],
        [],
    ),
    (
        "tools_need_native",
        {},
        RoutingInput(text="add 2 and 3", tools_required=True),
        [LOCAL, BACKUP],
        CLOUD,
        ["tools_native"],
        [BACKUP],
        [("ollama", "no_native_tools")],
    ),
    (
        "tools_xml_allowed",
        {"allow_xml_tools": True},
        RoutingInput(text="add 2 and 3", tools_required=True),
        [],
        LOCAL,
        ["default"],
        [],
        [],
    ),
    (
        "tools_local_model_is_native",
        {"local": LOCAL_TOOLS.to_json()},
        RoutingInput(text="add 2 and 3", tools_required=True),
        [],
        LOCAL_TOOLS,
        ["default"],
        [],
        [],
    ),
    (
        "token_budget",
        {},
        RoutingInput(text="hi", estimated_tokens=5000),
        [],
        STRONG,
        ["token_budget"],
        [],
        [],
    ),
    ("complexity", {}, RoutingInput(text=COMPLEX), [], STRONG, ["complexity"], [], []),
    (
        "budget_and_complexity",
        {},
        RoutingInput(text=COMPLEX, estimated_tokens=5000),
        [],
        STRONG,
        ["token_budget", "complexity"],
        [],
        [],
    ),
    (
        "strong_defaults_to_cloud",
        {"strong": None},
        RoutingInput(text=COMPLEX),
        [],
        CLOUD,
        ["complexity"],
        [],
        [],
    ),
    (
        "no_strong_or_cloud_stays_local",
        {"strong": None, "cloud": None},
        RoutingInput(text=COMPLEX),
        [],
        LOCAL,
        ["default"],
        [],
        [],
    ),
    (
        "force_by_slot",
        {"force_provider": "cloud"},
        RoutingInput(text=COMPLEX),
        [],
        CLOUD,
        ["force_provider"],
        [],
        [],
    ),
    (
        "force_by_provider_name",
        {"force_provider": "openai"},
        RoutingInput(text="hi"),
        [],
        CLOUD,
        ["force_provider"],
        [],
        [],
    ),
    (
        "force_per_run_overrides_policy",
        {"force_provider": "cloud"},
        RoutingInput(text="hi", force_provider="strong"),
        [],
        STRONG,
        ["force_provider"],
        [],
        [],
    ),
    ("prefer_cloud", {"prefer": "cloud"}, RoutingInput(text="hi"), [], CLOUD, ["default"], [], []),
    (
        "fallbacks_kept_and_deduplicated",
        {},
        RoutingInput(text="hi"),
        [LOCAL, BACKUP],
        LOCAL,
        ["default"],
        [BACKUP],
        [],
    ),
    (
        "privacy_without_local_target_uses_local_fallback",
        {"local": None},
        RoutingInput(text="the secret is out"),
        [CLOUD, LOCAL_TOOLS],
        LOCAL_TOOLS,
        ["privacy"],
        [],
        [("openai", "privacy_local_only")],
    ),
]


@pytest.mark.parametrize(
    ("changes", "data", "fallbacks", "target", "factors", "rest", "skipped"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_routing_rules(
    changes: dict[str, Any],
    data: RoutingInput,
    fallbacks: list[Target],
    target: Target,
    factors: list[str],
    rest: list[Target],
    skipped: list[tuple[str, str]],
) -> None:
    plan = decide(policy(**changes), data, fallbacks, native_tools=native_tools, is_local=is_local)
    assert plan.targets[0] == target
    assert plan.factors == factors
    assert plan.targets[1:] == rest
    assert [(s.provider, s.reason) for s in plan.skipped] == skipped
    assert plan.decision is not None
    assert plan.decision["provider"] == target.provider
    assert plan.decision["model"] == target.model
    assert plan.decision["factors"] == factors


def test_decision_reports_pattern_names_never_the_text() -> None:
    plan = decide(
        policy(),
        RoutingInput(text="password hunter2 and card 4111 1111 1111 1111"),
        native_tools=native_tools,
        is_local=is_local,
    )
    assert plan.decision is not None
    assert plan.decision["privacy_matches"] == ["password", "card_number"]
    assert "hunter2" not in str(plan.decision)
    assert "4111" not in str(plan.decision)


def test_privacy_without_any_local_provider_sends_nothing() -> None:
    with pytest.raises(NoEligibleProvider) as caught:
        decide(
            policy(local=None),
            RoutingInput(text="my password"),
            [CLOUD, BACKUP],
            native_tools=native_tools,
            is_local=is_local,
        )
    assert isinstance(caught.value, ProviderUnavailable)
    assert caught.value.code == "no_eligible_provider"
    assert caught.value.details["privacy_matches"] == ["password"]


def test_decisions_are_deterministic() -> None:
    data = RoutingInput(text=COMPLEX, history=["earlier"], estimated_tokens=10)
    first = decide(policy(), data, [BACKUP], native_tools=native_tools, is_local=is_local)
    for _ in range(5):
        again = decide(policy(), data, [BACKUP], native_tools=native_tools, is_local=is_local)
        assert again.decision == first.decision
        assert again.targets == first.targets


def test_complexity_score() -> None:
    assert complexity_score("") == 0.0
    assert complexity_score("hi") < 0.05
    assert complexity_score(COMPLEX) > 0.65
    assert 0.0 <= complexity_score("x " * 5000) <= 1.0
    # length alone tops out at 0.3; ten complex terms at 0.4
    assert complexity_score("a. " * 1000) == pytest.approx(0.3 + 0.3 / 25, abs=0.01)


def test_default_patterns_catch_common_secrets() -> None:
    compiled = RoutingPolicy.parse({"cloud": CLOUD.to_json()}, is_local=is_local).privacy_patterns
    assert set(compiled) == set(DEFAULT_PRIVACY_PATTERNS)
    hits = {
        "my passphrase": "password",
        "export API_KEY=": "api_key",
        "-----BEGIN RSA PRIVATE KEY-----": "private_key",
        "aws credentials": "credential",
        "top secret": "secret",
    }
    for text, name in hits.items():
        assert compiled[name].search(text), text
    assert not any(p.search("What time is check-out?") for p in compiled.values())


# --- plans for ordinary agents ---------------------------------------------------------


def test_ordinary_agent_plan_is_primary_then_fallbacks_without_scanning() -> None:
    def never() -> RoutingInput:
        raise AssertionError("an ordinary agent must not be scanned")

    plan = plan_run(
        "openai",
        "gpt-4o-mini",
        [BACKUP.to_json()],
        {},
        never,
        native_tools=native_tools,
        is_local=is_local,
    )
    assert plan.targets == [CLOUD, BACKUP]
    assert plan.decision is None
    assert plan.factors == []


def test_concrete_provider_with_policy_fills_its_slot() -> None:
    plan = plan_run(
        "ollama",
        "gemma2:2b",
        [],
        {"routing": {"cloud": CLOUD.to_json()}},
        lambda: RoutingInput(text="add", tools_required=True),
        native_tools=native_tools,
        is_local=is_local,
    )
    assert plan.targets == [CLOUD]
    assert plan.factors == ["tools_native"]


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("routing", "match"),
    [
        ("cloud", "must be a mapping"),
        ({}, "needs a 'local' or a 'cloud' target"),
        ({"cloud": {"provider": "openai"}}, "routing.cloud must be a mapping"),
        ({"cloud": {"provider": "auto", "model": "x"}}, "cannot be 'auto'"),
        ({**BASE_POLICY, "colour": "red"}, "unknown routing setting"),
        ({**BASE_POLICY, "prefer": "fastest"}, "routing.prefer"),
        ({"cloud": CLOUD.to_json(), "prefer": "local"}, "routing.prefer"),
        ({**BASE_POLICY, "privacy_patterns": ["("]}, "invalid regex"),
        ({**BASE_POLICY, "privacy_patterns": "password"}, "privacy_patterns"),
        ({**BASE_POLICY, "token_budget": 0}, "token_budget"),
        ({**BASE_POLICY, "complexity_threshold": 1.5}, "complexity_threshold"),
        ({**BASE_POLICY, "allow_xml_tools": "yes"}, "allow_xml_tools"),
        ({**BASE_POLICY, "force_provider": "groq"}, "force_provider"),
    ],
)
def test_invalid_policies_are_rejected(routing: Any, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        validate_agent_routing("auto", "auto", {"routing": routing}, is_local=is_local)


def test_auto_needs_a_policy() -> None:
    with pytest.raises(ValidationError, match="needs a 'local' or a 'cloud' target"):
        validate_agent_routing("auto", "auto", {}, is_local=is_local)


def test_validation_returns_the_pairs_to_check() -> None:
    assert validate_agent_routing("openai", "gpt-4o", {}, is_local=is_local) == [
        ("openai", "gpt-4o")
    ]
    assert validate_agent_routing("auto", "auto", {"routing": BASE_POLICY}, is_local=is_local) == [
        ("ollama", "gemma2:2b"),
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o"),
    ]
    assert validate_agent_routing(
        "ollama", "gemma2:2b", {"routing": {"cloud": CLOUD.to_json()}}, is_local=is_local
    ) == [("ollama", "gemma2:2b"), ("openai", "gpt-4o-mini")]


def test_retry_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="max_attempts"):
        validate_agent_routing(
            "openai", "gpt-4o", {"retry": {"max_attempts": 0}}, is_local=is_local
        )
    with pytest.raises(ValidationError, match="unknown retry"):
        validate_agent_routing("openai", "gpt-4o", {"retry": {"tries": 2}}, is_local=is_local)


def test_configured_provider_never_borrows_the_vendor_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider from AI_AGENTS_PROVIDERS without a key must not get OPENAI_API_KEY."""
    from ai_agents.providers.factory import ProviderFactory

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-of-openai")
    monkeypatch.setenv(
        "AI_AGENTS_PROVIDERS",
        '{"together": {"adapter": "openai", "base_url": "http://127.0.0.1:9/v1"}}',
    )
    provider = ProviderFactory().get("together")
    assert provider.settings.api_key == "not-needed"
    assert provider.client.api_key == "not-needed"  # type: ignore[attr-defined]
