"""``ai-agents`` without servers: version, completion, models, and the one-line errors
for a missing optional dependency (issue 15, item 4)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

from ai_agents.cli import main
from ai_agents.commands._failures import OPTIONAL_MODULES

ROOT = Path(__file__).resolve().parents[2]


def test_version_is_the_installed_distributions(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"ai-agents {metadata.version('ai-agents-platform')}"


def complete(script: str, line: str) -> list[str]:
    """What bash offers for *line* (the cursor at its end) with *script* loaded."""
    program = (
        f"{script}\n"
        f"COMP_WORDS=({line})\n"
        + ('COMP_WORDS+=("")\n' if line.endswith(" ") else "")
        + "COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n"
        "_ai_agents_complete\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    done = subprocess.run(
        ["bash", "-c", program], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.split()


def test_bash_completion_offers_subcommands_flags_and_choices(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    top = complete(script, "ai-agents ")
    for name in ("agents", "threads", "run", "usage", "jobs", "models", "completion", "migrate"):
        assert name in top
    assert "--version" in top
    assert complete(script, "ai-agents ag") == ["agents"]
    assert complete(script, "ai-agents agents ") == [
        *("create", "list", "show", "update", "delete"),
        *("-h", "--help"),
    ]
    assert {"--purge", "--yes", "--tenant", "--json"} <= set(
        complete(script, "ai-agents agents delete --")
    )
    assert complete(script, "ai-agents threads export x --format ") == ["jsonl", "markdown"]
    assert complete(script, "ai-agents -v jobs list --status c") == ["cancelled"]
    assert complete(script, "ai-agents completion ") == ["bash", "zsh", "-h", "--help"]


def test_zsh_completion_loads_the_same_function(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "zsh"]) == 0
    script = capsys.readouterr().out
    assert script.startswith("#compdef ai-agents\n")
    assert "bashcompinit" in script
    assert "complete -o default -F _ai_agents_complete ai-agents" in script
    assert "/agents/update)" in script and "--clear-setting" in script


def test_models_lists_the_registry_as_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--provider", "anthropic", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows and {r["provider"] for r in rows} == {"anthropic"}
    assert all(r["context_window"] > 0 and "cost_per_1m_input" in r for r in rows)

    assert main(["models", "--provider", "anthropic"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["provider", "model", "context"]
    assert len(table) == len(rows) + 1

    assert main(["models", "--provider", "nobody"]) == 1
    err = capsys.readouterr().err
    assert "no models known for provider 'nobody'" in err and "anthropic" in err


def test_a_missing_extra_is_one_install_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # `import uvicorn` now fails
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: this needs the optional dependency 'uvicorn': pip install 'ai-agents-platform[api]'\n"
    )


def test_a_missing_module_that_is_no_extra_keeps_its_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ai_agents import cli

    def broken(_args: object) -> int:
        import no_such_module_of_ours  # type: ignore[import-not-found]  # noqa: F401

        return 0

    monkeypatch.setitem(cli.COMMANDS, "models", ("models", lambda _p: None, broken))
    with pytest.raises(ModuleNotFoundError):
        main(["models"])


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_optional_modules_match_the_extras_of_pyproject() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    dists_of_module = metadata.packages_distributions()
    covered: dict[str, set[str]] = {}
    for module, extra in OPTIONAL_MODULES.items():
        assert extra in extras, f"{module}: no extra named {extra!r}"
        dists = {_normalized(d) for d in dists_of_module.get(module, [])}
        required = {_normalized(re.split(r"[<>=\[; ]", r)[0]) for r in extras[extra]}
        assert dists & required, f"{module} is not installed by ai-agents-platform[{extra}]"
        covered.setdefault(extra, set()).update(dists & required)
    for extra in set(extras) - {"dev"}:
        required = {_normalized(re.split(r"[<>=\[; ]", r)[0]) for r in extras[extra]}
        assert covered.get(extra) == required, (
            f"ai-agents-platform[{extra}]: a module is not mapped"
        )
