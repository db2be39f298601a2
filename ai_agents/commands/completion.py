"""``ai-agents completion bash|zsh``: a shell completion script made from the parser.

The script knows every subcommand (``agents``, ``agents create``, ...), their flags and
the values of flags with fixed choices; it is generated from the same argparse parser
the command uses, so it is never out of date with the installed version. Install it
with ``eval "$(ai-agents completion bash)"`` in ``~/.bashrc`` (``zsh`` in ``~/.zshrc``).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field

from ai_agents.cli import command

SHELLS = ("bash", "zsh")
FUNCTION = "_ai_agents_complete"


@dataclass
class Level:
    """One (sub)command: its path of words, subcommands, flags and flag values."""

    path: tuple[str, ...]
    subcommands: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    choices: dict[str, list[str]] = field(default_factory=dict)


def levels(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Level]:
    """Every command level of *parser*, the top first."""
    level = Level(path)
    children: list[tuple[str, argparse.ArgumentParser]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                level.subcommands.append(name)
                children.append((name, child))
            continue
        level.flags += action.option_strings
        if not action.option_strings and action.choices:  # a positional such as `bash|zsh`
            level.subcommands += [str(c) for c in action.choices]
        elif action.choices:
            for flag in action.option_strings:
                level.choices[flag] = [str(c) for c in action.choices]
    yield level
    for name, child in children:
        yield from levels(child, (*path, name))


def bash_script(parser: argparse.ArgumentParser, prog: str = "ai-agents") -> str:
    all_levels = list(levels(parser))
    known = " | ".join(shlex.quote("/" + "/".join(lv.path)) for lv in all_levels if lv.path)
    words_cases = []
    value_cases = []
    for lv in all_levels:
        where = "/" + "/".join(lv.path)
        words = shlex.quote(" ".join(lv.subcommands + lv.flags))
        words_cases.append(f"            {shlex.quote(where)}) words={words} ;;")
        for flag, values in lv.choices.items():
            value_cases.append(
                f"        {shlex.quote(f'{where} {flag}')}) words={shlex.quote(' '.join(values))} ;;"
            )
    value_block = "\n".join(value_cases) or "        *) ;;"
    words_block = "\n".join(words_cases)
    return f"""# {prog} completion for bash: eval "$({prog} completion bash)"
{FUNCTION}() {{
    local cur="${{COMP_WORDS[COMP_CWORD]}}" prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    local path="" words="" i
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "$path/${{COMP_WORDS[i]}}" in
            {known}) path="$path/${{COMP_WORDS[i]}}" ;;
        esac
    done
    case "${{path:-/}} $prev" in
{value_block}
    esac
    if [[ -z "$words" ]]; then
        case "${{path:-/}}" in
{words_block}
        esac
    fi
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
}}
complete -o default -F {FUNCTION} {prog}
"""


def zsh_script(parser: argparse.ArgumentParser, prog: str = "ai-agents") -> str:
    """zsh runs the bash function through its ``bashcompinit`` layer."""
    body = bash_script(parser, prog).split("\n", 1)[1]
    return (
        f"#compdef {prog}\n"
        f'# {prog} completion for zsh: eval "$({prog} completion zsh)"\n'
        "autoload -U +X compinit && compinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + body
    )


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS)


@command("completion", "print a shell completion script (bash or zsh)", _configure)
def _completion_command(args: argparse.Namespace) -> int:
    from ai_agents.cli import build_parser

    parser = build_parser()
    print(bash_script(parser) if args.shell == "bash" else zsh_script(parser), end="")
    return 0
