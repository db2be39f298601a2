"""AgentDefinition: who an agent is, compiled to a sectioned system prompt.

It is stored as its fields (not only the compiled text) so it can be edited and
recompiled; :meth:`AgentDefinition.compile` is deterministic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ai_agents.errors import ValidationError


@dataclass(slots=True)
class AgentDefinition:
    """An agent's identity, goal, constraints and behaviour (design section 5)."""

    name: str
    role: str
    goal: str | None = None
    constraints: list[str] = field(default_factory=list)
    personality: dict[str, str] | None = None
    examples: list[dict[str, str]] = field(default_factory=list)
    tools: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip():
            raise ValidationError(
                "agent name must be a non-empty string", details={"field": "name"}
            )
        if not isinstance(self.role, str) or not self.role.strip():
            raise ValidationError(
                "agent role must be a non-empty string", details={"field": "role"}
            )
        if not all(isinstance(c, str) for c in self.constraints):
            raise ValidationError(
                "constraints must be a list of strings", details={"field": "constraints"}
            )
        if self.personality is not None and not isinstance(self.personality, dict):
            raise ValidationError(
                "personality must be a mapping like {'tone': ..., 'style': ...}",
                details={"field": "personality"},
            )
        for i, example in enumerate(self.examples):
            if not isinstance(example, dict) or not {"user", "assistant"} <= set(example):
                raise ValidationError(
                    f"examples[{i}] must be a mapping with 'user' and 'assistant'",
                    details={"field": "examples"},
                )
        if not all(isinstance(t, str) and t for t in self.tools):
            raise ValidationError("tools must be a list of tool names", details={"field": "tools"})

    def compile(self) -> str:
        """The system prompt: Role, Goal, Constraints, Communication Style, Examples."""
        sections = [f"# Role\n{self.role.strip()}"]
        if self.goal:
            sections.append(f"# Goal\n{self.goal.strip()}")
        if self.constraints:
            items = "\n".join(f"- {c}" for c in self.constraints)
            sections.append(f"# Constraints\n{items}")
        if self.personality:
            tone = self.personality.get("tone", "professional")
            lines = [f"Tone: {tone}"]
            style = self.personality.get("style")
            if style:
                lines.append(f"Style: {style}")
            sections.append("# Communication Style\n" + "\n".join(lines))
        if self.examples:
            sections.append("# Example Interactions\n" + self._format_examples())
        return "\n\n".join(sections)

    def _format_examples(self) -> str:
        return "\n\n".join(
            f"User: {ex['user']}\nAssistant: {ex['assistant']}" for ex in self.examples
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentDefinition:
        return cls(
            name=data["name"],
            role=data["role"],
            goal=data.get("goal"),
            constraints=list(data.get("constraints") or []),
            personality=data.get("personality"),
            examples=list(data.get("examples") or []),
            tools=list(data.get("tools") or []),
        )
