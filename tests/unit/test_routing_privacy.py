"""Tenant-supplied privacy patterns cannot freeze the process (RE2, bounded, validated)."""

from __future__ import annotations

import asyncio
import time

import pytest

from ai_agents.errors import ValidationError
from ai_agents.providers.routing import (
    MAX_PATTERN_LENGTH,
    MAX_PRIVACY_PATTERNS,
    RoutingInput,
    Target,
    plan_run,
    validate_agent_routing,
)

LOCAL = {"provider": "ollama", "model": "gemma2:2b"}
CLOUD = {"provider": "openai", "model": "gpt-4o-mini"}
#: Catastrophic backtracking for a backtracking engine: 2^29 paths before failing.
EVIL_PATTERN = "^(a+)+$"
EVIL_INPUT = "a" * 29 + "!"


def is_local(provider: str) -> bool:
    return provider == "ollama"


async def test_backtracking_pattern_does_not_block_the_event_loop() -> None:
    settings = {"routing": {"local": LOCAL, "cloud": CLOUD, "privacy_patterns": [EVIL_PATTERN]}}
    gaps: list[float] = []
    done = asyncio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    ticking = asyncio.create_task(ticker())
    await asyncio.sleep(0.05)  # the ticker is running
    plan = plan_run(
        "auto",
        "auto",
        [],
        settings,
        lambda: RoutingInput(text=EVIL_INPUT, history=[EVIL_INPUT, "hello"]),
        native_tools=lambda t: True,
        is_local=is_local,
    )
    await asyncio.sleep(0.05)  # let the ticker see the loop again
    done.set()
    await ticking

    assert plan.targets[0] == Target(**LOCAL)  # no privacy match: the preferred target
    assert plan.decision is not None and plan.decision["privacy_matches"] == []
    assert gaps and max(gaps) < 1.0, f"the event loop stalled for {max(gaps):.1f}s"


def test_patterns_match_case_insensitively_and_report_names() -> None:
    settings = {
        "routing": {"local": LOCAL, "cloud": CLOUD, "privacy_patterns": {"patient": r"\bpatient\b"}}
    }
    plan = plan_run(
        "auto",
        "auto",
        [],
        settings,
        lambda: RoutingInput(text="hi", history=["The PATIENT record"]),
        native_tools=lambda t: True,
        is_local=is_local,
    )
    assert plan.decision is not None and plan.decision["privacy_matches"] == ["patient"]


@pytest.mark.parametrize(
    ("patterns", "match"),
    [
        ([r"(a)\1"], "invalid regex"),  # backreference: not RE2
        ([r"secret(?=s)"], "invalid regex"),  # lookahead: not RE2
        (["x"] * (MAX_PRIVACY_PATTERNS + 1), f"at most {MAX_PRIVACY_PATTERNS} patterns"),
        (["a" * (MAX_PATTERN_LENGTH + 1)], f"longer than {MAX_PATTERN_LENGTH}"),
        ([""], "non-empty strings"),
    ],
)
def test_patterns_re2_cannot_run_or_over_the_bounds_are_rejected_at_save(
    patterns: list[str], match: str
) -> None:
    settings = {"routing": {"local": LOCAL, "cloud": CLOUD, "privacy_patterns": patterns}}
    with pytest.raises(ValidationError, match=match) as info:
        validate_agent_routing("auto", "auto", settings, is_local=is_local)
    assert info.value.details["field"] == "routing.privacy_patterns"
