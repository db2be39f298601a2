"""Which provider answers a run: fallback chains and ``provider="auto"`` routing.

Every run gets a :class:`Plan`: the ordered targets ``(provider, model)`` the dispatcher
(:mod:`ai_agents.providers.fallback`) tries, the fallbacks left out and why, and the
decision factors. For an ordinary agent the plan is just ``[primary, *agent.fallbacks]``
(no work beyond building the list).

Auto routing (``provider="auto"``, or any agent with ``settings["routing"]``) follows a
:class:`RoutingPolicy` and these deterministic rules, evaluated in this order, once per
run (so every model call of a turn goes to the same place unless a fallback is needed):

1. **privacy**: the input or the loaded history matches one of ``privacy_patterns``
   (case-insensitive RE2 regexes, see below) -> the ``local`` target, and *only local
   providers*: cloud fallbacks are dropped (reason ``privacy_local_only``). A hard
   constraint: no other rule, not even ``force_provider``, can send such a run to a cloud
   provider. If no local target exists the run fails with :class:`NoEligibleProvider`
   and nothing is sent.
2. **force_provider** (policy, or per run ``metadata={"routing": {"force_provider": ...}}``)
   -> that target (a target name ``local``/``cloud``/``strong`` or a target's provider).
3. **token_budget** / **complexity_threshold**: estimated input tokens above the budget,
   or :func:`complexity_score` of the input above the threshold -> the ``strong`` target
   (default: ``cloud``).
4. **tools**: the agent has tools, the ``prefer``-red target is local and its model has no
   native tool calling, and ``allow_xml_tools`` is false -> the ``cloud`` target (or
   ``strong``, whichever has native tools); fallbacks without native tools are dropped
   (reason ``no_native_tools``). With ``allow_xml_tools`` the local model gets tools by
   XML injection instead.
5. **default**: the ``prefer`` target (``local`` when one is configured, else ``cloud``).

The decision (target, factors, score, token estimate, which pattern *names* matched,
never the matched text) is returned in ``AgentResponse.routing["decision"]``, saved in
the assistant message's ``metadata["routing"]`` and logged.

Privacy patterns are tenant input run against every input and history message, in the
event loop. They are therefore compiled with RE2 (``google-re2``), whose matching time
is linear in the text: a backtracking pattern such as ``^(a+)+$`` cannot freeze the
process. RE2 has no backreferences or lookaround; a pattern it cannot compile, more
than :data:`MAX_PRIVACY_PATTERNS` patterns or one longer than
:data:`MAX_PATTERN_LENGTH` characters is a :class:`ValidationError` when the agent is
saved.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import re2

from ai_agents.errors import ProviderUnavailable, ValidationError
from ai_agents.providers.retry import RetryPolicy

__all__ = [
    "DEFAULT_PRIVACY_PATTERNS",
    "MAX_PATTERN_LENGTH",
    "MAX_PRIVACY_PATTERNS",
    "NoEligibleProvider",
    "Plan",
    "RoutingInput",
    "RoutingPolicy",
    "Skip",
    "Target",
    "complexity_score",
    "decide",
    "plan_run",
    "validate_agent_routing",
]

log = logging.getLogger("ai_agents.routing")

AUTO = "auto"
TARGET_NAMES = ("local", "cloud", "strong")

#: Default privacy markers (names are reported, the matched text never is).
DEFAULT_PRIVACY_PATTERNS: dict[str, str] = {
    "password": r"\bpass(?:word|wd|phrase)\b",
    "secret": r"\bsecrets?\b",
    "api_key": r"\bapi[ _-]?keys?\b",
    "private_key": r"\bprivate[ _-]?keys?\b|-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "credential": r"\bcredentials?\b",
    "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "card_number": r"\b(?:\d[ -]?){13,16}\b",
}

#: Bounds of ``routing.privacy_patterns`` (each pattern is run on every message of a run).
MAX_PRIVACY_PATTERNS = 32
MAX_PATTERN_LENGTH = 512

#: Case-insensitive; compile errors are raised (as ValidationError), not logged by RE2.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.case_sensitive = False
_RE2_OPTIONS.log_errors = False

#: Words that make a request "complex" (the seed design's list).
COMPLEX_TERMS = (
    "analyze", "synthesize", "evaluate", "compare", "contrast", "explain", "technical",
    "detailed", "comprehensive", "algorithm", "implementation", "architecture", "design",
    "optimize", "complex",
)  # fmt: skip


class NoEligibleProvider(ProviderUnavailable):
    """The routing rules left no provider that may receive this run (nothing was sent)."""

    code = "no_eligible_provider"


# --- values -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One (provider, model) the dispatcher may call."""

    provider: str
    model: str

    def to_json(self) -> dict[str, str]:
        return {"provider": self.provider, "model": self.model}


@dataclass(frozen=True, slots=True, kw_only=True)
class Skip:
    """A target that did not answer, and why (routing rule, open breaker, failures)."""

    provider: str
    model: str
    reason: str
    error: str | None = None
    status: int | None = None
    attempts: int = 0
    retry_in: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "provider": self.provider,
            "model": self.model,
            "reason": self.reason,
        }
        if self.error is not None:
            out["error"] = self.error
        if self.status is not None:
            out["status"] = self.status
        if self.attempts:
            out["attempts"] = self.attempts
        if self.retry_in is not None:
            out["retry_in"] = round(self.retry_in, 3)
        return out


@dataclass(slots=True)
class Plan:
    """Targets to try in order, fallbacks left out, and the auto-routing decision."""

    targets: list[Target]
    skipped: list[Skip] = field(default_factory=list)
    factors: list[str] = field(default_factory=list)
    decision: dict[str, Any] | None = None


def _target(value: Any, where: str) -> Target:
    if (
        not isinstance(value, Mapping)
        or not isinstance(value.get("provider"), str)
        or not isinstance(value.get("model"), str)
        or not value["provider"].strip()
        or not value["model"].strip()
    ):
        raise ValidationError(
            f"{where} must be a mapping with non-empty 'provider' and 'model'",
            details={"field": where},
        )
    if value["provider"] == AUTO:
        raise ValidationError(f"{where}: provider cannot be 'auto'", details={"field": where})
    return Target(value["provider"], value["model"])


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingPolicy:
    """``agent.settings["routing"]``, validated. See the module docstring for the rules."""

    local: Target | None = None
    cloud: Target | None = None
    strong: Target | None = None
    prefer: str = "local"
    #: name -> compiled RE2 pattern (``search(text)`` like ``re``, in linear time).
    privacy_patterns: Mapping[str, Any] = field(default_factory=dict)
    allow_xml_tools: bool = False
    token_budget: int | None = None
    complexity_threshold: float | None = None
    force_provider: str | None = None

    @classmethod
    def parse(
        cls, data: Any, *, primary: Target | None = None, is_local: Callable[[str], bool]
    ) -> RoutingPolicy:
        """Validate a policy mapping. *primary*: a concrete agent provider fills the
        ``local`` or ``cloud`` slot it belongs to when that slot is not given."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ValidationError(
                "settings.routing must be a mapping", details={"field": "routing"}
            )
        known = {
            *TARGET_NAMES,
            "prefer",
            "privacy_patterns",
            "allow_xml_tools",
            "token_budget",
            "complexity_threshold",
            "force_provider",
        }
        unknown = set(data) - known
        if unknown:
            raise ValidationError(
                f"unknown routing setting(s): {', '.join(sorted(unknown))}",
                details={"field": "routing", "allowed": sorted(known)},
            )
        slots = {
            name: _target(data[name], f"routing.{name}") if data.get(name) is not None else None
            for name in TARGET_NAMES
        }
        if primary is not None:
            slot = "local" if is_local(primary.provider) else "cloud"
            slots[slot] = slots[slot] or primary
        if slots["local"] is None and slots["cloud"] is None:
            raise ValidationError(
                "routing needs a 'local' or a 'cloud' target ({'provider': ..., 'model': ...})",
                details={"field": "routing"},
            )
        prefer = data.get("prefer") or ("local" if slots["local"] else "cloud")
        if (
            prefer not in TARGET_NAMES
            or slots[prefer] is None
            and not (prefer == "strong" and slots["cloud"])
        ):
            raise ValidationError(
                f"routing.prefer must name a configured target (local, cloud, strong), "
                f"got {prefer!r}",
                details={"field": "routing.prefer"},
            )
        patterns = data.get("privacy_patterns")
        compiled = _compile_patterns(DEFAULT_PRIVACY_PATTERNS if patterns is None else patterns)
        allow_xml = data.get("allow_xml_tools", False)
        if not isinstance(allow_xml, bool):
            raise ValidationError(
                "routing.allow_xml_tools must be a boolean",
                details={"field": "routing.allow_xml_tools"},
            )
        budget = data.get("token_budget")
        if budget is not None and (
            isinstance(budget, bool) or not isinstance(budget, int) or budget < 1
        ):
            raise ValidationError(
                "routing.token_budget must be a positive integer",
                details={"field": "routing.token_budget"},
            )
        threshold = data.get("complexity_threshold")
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 <= threshold <= 1
        ):
            raise ValidationError(
                "routing.complexity_threshold must be a number between 0 and 1",
                details={"field": "routing.complexity_threshold"},
            )
        policy = cls(
            local=slots["local"],
            cloud=slots["cloud"],
            strong=slots["strong"],
            prefer=prefer,
            privacy_patterns=compiled,
            allow_xml_tools=allow_xml,
            token_budget=budget,
            complexity_threshold=float(threshold) if threshold is not None else None,
        )
        force = data.get("force_provider")
        if force is not None:
            policy.resolve_force(force)  # validates
            object.__setattr__(policy, "force_provider", force)
        return policy

    def slot(self, name: str) -> Target | None:
        if name == "strong":
            return self.strong or self.cloud
        return self.local if name == "local" else self.cloud

    def targets(self) -> list[Target]:
        """Every configured target (for validation at create/update time)."""
        return [t for t in (self.local, self.cloud, self.strong) if t is not None]

    def resolve_force(self, force: Any) -> tuple[str, Target]:
        """(slot name, target) named by a force_provider value."""
        if isinstance(force, str):
            if force in TARGET_NAMES and self.slot(force) is not None:
                return force, self.slot(force)  # type: ignore[return-value]
            for name in TARGET_NAMES:
                target = self.slot(name)
                if target is not None and target.provider == force:
                    return name, target
        raise ValidationError(
            f"force_provider {force!r} names no configured routing target "
            f"(use local, cloud, strong or one of their providers)",
            details={"field": "routing.force_provider"},
        )


def _compile_patterns(patterns: Any) -> dict[str, Any]:
    where = {"field": "routing.privacy_patterns"}
    if isinstance(patterns, Mapping):
        items = list(patterns.items())
    elif isinstance(patterns, Sequence) and not isinstance(patterns, str):
        items = [(str(p), p) for p in patterns]
    else:
        raise ValidationError(
            "routing.privacy_patterns must be a list of regexes or a {name: regex} mapping",
            details=where,
        )
    if len(items) > MAX_PRIVACY_PATTERNS:
        raise ValidationError(
            f"routing.privacy_patterns: at most {MAX_PRIVACY_PATTERNS} patterns, got {len(items)}",
            details=where,
        )
    out = {}
    for name, pattern in items:
        if not isinstance(pattern, str) or not pattern:
            raise ValidationError(
                "routing.privacy_patterns entries must be non-empty strings", details=where
            )
        if len(pattern) > MAX_PATTERN_LENGTH or len(str(name)) > MAX_PATTERN_LENGTH:
            raise ValidationError(
                f"routing.privacy_patterns: a pattern (or its name) is longer than "
                f"{MAX_PATTERN_LENGTH} characters",
                details=where,
            )
        try:
            out[str(name)] = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            raise ValidationError(
                f"routing.privacy_patterns: invalid regex {pattern!r}: {reason} "
                "(RE2 syntax: no backreferences or lookaround)",
                details=where,
            ) from exc
    return out


# --- scoring ------------------------------------------------------------------------------


def complexity_score(text: str) -> float:
    """0..1 from the seed design: 0.3 x length (1000 chars = full), 0.4 x complex terms
    (10 distinct terms = full), 0.3 x average sentence length (25 words = full)."""
    if not text:
        return 0.0
    length_factor = min(len(text) / 1000, 1.0) * 0.3
    lowered = text.lower()
    terms = sum(1 for term in COMPLEX_TERMS if term in lowered)
    term_factor = min(terms / 10, 1.0) * 0.4
    sentences = [s.strip() for s in re.split(r"[.!?]+", text) if s.strip()]
    if sentences:
        average = sum(len(s.split()) for s in sentences) / len(sentences)
        sentence_factor = min(average / 25, 1.0) * 0.3
    else:
        sentence_factor = 0.0
    return round(length_factor + term_factor + sentence_factor, 4)


@dataclass(frozen=True, slots=True, kw_only=True)
class RoutingInput:
    """What the rules look at (computed by the runner once per run)."""

    text: str
    history: Sequence[str] = ()
    tools_required: bool = False
    estimated_tokens: int = 0
    force_provider: str | None = None


# --- deciding -----------------------------------------------------------------------------


def decide(
    policy: RoutingPolicy,
    data: RoutingInput,
    fallbacks: Sequence[Target] = (),
    *,
    native_tools: Callable[[Target], bool],
    is_local: Callable[[str], bool],
) -> Plan:
    """Apply the rules (module docstring) and return the plan with its decision."""

    def local_ok(provider: str) -> bool:
        return is_local(provider) or (
            policy.local is not None and provider == policy.local.provider
        )

    factors: list[str] = []
    details: dict[str, Any] = {
        "tools_required": data.tools_required,
        "estimated_tokens": data.estimated_tokens,
    }
    local_only = False
    native_only = False
    choice: str | None = None

    matched = [
        name
        for name, pattern in policy.privacy_patterns.items()
        if pattern.search(data.text) or any(pattern.search(h) for h in data.history)
    ]
    details["privacy_matches"] = matched
    force = data.force_provider or policy.force_provider
    if matched:
        factors.append("privacy")
        local_only = True
        if force is not None:
            factors.append("force_provider_ignored")
        if policy.local is None:
            local_fallbacks = [t for t in fallbacks if local_ok(t.provider)]
            if not local_fallbacks:
                raise _no_local(matched)
            choice = None
            chosen = local_fallbacks[0]
        else:
            choice = "local"
            chosen = policy.local
    elif force is not None:
        choice, chosen = policy.resolve_force(force)
        factors.append("force_provider")
    else:
        score = complexity_score(data.text)
        details["complexity_score"] = score
        over_budget = (
            policy.token_budget is not None and data.estimated_tokens > policy.token_budget
        )
        too_complex = (
            policy.complexity_threshold is not None and score > policy.complexity_threshold
        )
        if (over_budget or too_complex) and policy.slot("strong") is not None:
            if over_budget:
                factors.append("token_budget")
            if too_complex:
                factors.append("complexity")
            choice = "strong"
        else:
            choice = policy.prefer
            preferred = policy.slot(choice)
            if (
                data.tools_required
                and not policy.allow_xml_tools
                and preferred is not None
                and local_ok(preferred.provider)
                and not native_tools(preferred)
            ):
                native = next(
                    (
                        (name, t)
                        for name in ("cloud", "strong")
                        if (t := policy.slot(name)) is not None and native_tools(t)
                    ),
                    None,
                )
                if native is not None:
                    choice = native[0]
                    factors.append("tools_native")
                    native_only = True
                else:
                    factors.append("tools_xml")  # no native-tool target: XML injection
            if not factors:
                factors.append("default")
        chosen = policy.slot(choice)  # type: ignore[assignment]
        assert chosen is not None

    targets = [chosen]
    skipped: list[Skip] = []
    for t in fallbacks:
        if t in targets:
            continue
        if local_only and not local_ok(t.provider):
            skipped.append(Skip(provider=t.provider, model=t.model, reason="privacy_local_only"))
        elif native_only and not native_tools(t):
            skipped.append(Skip(provider=t.provider, model=t.model, reason="no_native_tools"))
        else:
            targets.append(t)
    decision = {
        "target": choice or "fallback",
        "provider": chosen.provider,
        "model": chosen.model,
        "factors": factors,
        **details,
    }
    return Plan(targets=targets, skipped=skipped, factors=list(factors), decision=decision)


def _no_local(matched: list[str]) -> NoEligibleProvider:
    exc = NoEligibleProvider(
        "the input matched privacy pattern(s) "
        f"{', '.join(matched)} but no local provider is configured (routing.local); "
        "nothing was sent",
        provider=AUTO,
    )
    exc.details["privacy_matches"] = matched
    return exc


def uses_routing(provider: str, settings: Mapping[str, Any]) -> bool:
    """Whether an agent is auto-routed (provider ``auto`` or a routing policy)."""
    return provider == AUTO or settings.get("routing") is not None


def plan_run(
    provider: str,
    model: str,
    fallbacks: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    data: Callable[[], RoutingInput],
    *,
    native_tools: Callable[[Target], bool],
    is_local: Callable[[str], bool],
) -> Plan:
    """The plan of one run. *data* is only called (and the input only scanned) when the
    agent is auto-routed; an ordinary agent costs one list."""
    chain = [Target(str(f["provider"]), str(f["model"])) for f in fallbacks]
    if not uses_routing(provider, settings):
        return Plan(targets=[Target(provider, model), *chain])
    primary = None if provider == AUTO else Target(provider, model)
    policy = RoutingPolicy.parse(settings.get("routing"), primary=primary, is_local=is_local)
    plan = decide(policy, data(), chain, native_tools=native_tools, is_local=is_local)
    log.info(
        "routing decision",
        extra={
            "routing_target": plan.decision and plan.decision["target"],
            "provider": plan.targets[0].provider,
            "model": plan.targets[0].model,
            "factors": plan.factors,
        },
    )
    return plan


def validate_agent_routing(
    provider: str, model: str, settings: Mapping[str, Any], *, is_local: Callable[[str], bool]
) -> list[tuple[str, str]]:
    """Validate ``settings["routing"]``/``settings["retry"]`` of an agent being saved.

    Returns the (provider, model) pairs to check like the primary (for ``provider="auto"``
    the primary itself is not one).
    """
    if settings.get("retry") is not None:
        RetryPolicy.from_mapping(settings["retry"])
    if not uses_routing(provider, settings):
        return [(provider, model)]
    primary = None if provider == AUTO else Target(provider, model)
    policy = RoutingPolicy.parse(settings.get("routing"), primary=primary, is_local=is_local)
    return [(t.provider, t.model) for t in policy.targets()]
