"""The built-in ``file_search`` tool's refs: how a passage is cited, how a run's
recorded searches turn the refs of an answer into ``file_citation`` annotations, and how
every registry resolves the tool (a registered tool of that name wins)."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from ai_agents.errors import UnknownToolError
from ai_agents.files.search import (
    FILE_SEARCH,
    FILE_SEARCH_TOOL,
    SearchOptions,
    citation_ref,
    cites,
    file_citations,
    refs_of_steps,
    vector_store_ids,
)
from ai_agents.runs.records import RunStep
from ai_agents.tools.decorator import build_tool
from ai_agents.tools.registry import ToolRegistry

FILE = "file-" + "a" * 32


def step(*calls: dict[str, Any], kind: str = "tool_calls") -> RunStep:
    return RunStep(
        id=uuid.uuid4(),
        run_id=uuid.uuid4(),
        thread_id=uuid.uuid4(),
        seq=1,
        type=kind,  # type: ignore[arg-type]
        status="completed",
        details={"tool_calls": list(calls)},
    )


def search_call(*results: dict[str, Any], client: bool = False) -> dict[str, Any]:
    output = json.dumps({"query": "q", "results": list(results)})
    return {"id": "call_1", "name": FILE_SEARCH, "output": output, "client": client}


def test_a_ref_names_the_file_digest_the_position_and_a_clean_name() -> None:
    ref = citation_ref(FILE, 3, "guide.md")
    assert ref.startswith("【") and ref.endswith(":3†guide.md】")
    assert ref == citation_ref(FILE, 3, "guide.md")  # stable
    assert ref != citation_ref("file-" + "b" * 32, 3, "guide.md")
    # The brackets of a ref never come from a file's name (they would end it early).
    odd = citation_ref(FILE, 0, "a】b【c\nd.txt")
    assert odd.endswith("†a b c d.txt】") and cites(f"see {odd}")
    assert citation_ref(FILE, 0, "  ").endswith("†file】")


def test_only_refs_the_run_received_become_annotations() -> None:
    given = citation_ref(FILE, 0, "guide.md")
    invented = citation_ref(FILE, 7, "guide.md")
    steps = [
        step(search_call({"ref": given, "file_id": FILE, "file_name": "guide.md"})),
        step(kind="message_creation"),
    ]
    refs = refs_of_steps(steps)
    assert refs == {given: FILE}
    text = f"Yes{given}, and no{invented}."
    (annotation,) = file_citations(text, refs)
    assert annotation == {
        "type": "file_citation",
        "text": given,
        "start_index": 3,
        "end_index": 3 + len(given),
        "file_citation": {"file_id": FILE},
    }
    assert text[annotation["start_index"] : annotation["end_index"]] == given


def test_failed_searches_and_client_functions_give_no_refs() -> None:
    ref = citation_ref(FILE, 0, "x")
    failed = {"id": "c", "name": FILE_SEARCH, "output": "Error: boom", "client": False}
    client = search_call({"ref": ref, "file_id": FILE}, client=True)
    running = {"id": "d", "name": FILE_SEARCH, "output": None, "client": False}
    assert refs_of_steps([step(failed, client, running)]) == {}


def test_stored_resources_and_options_are_read_leniently() -> None:
    ident = uuid.uuid4()
    stored = {FILE_SEARCH: {"vector_store_ids": [f"vs_{ident.hex}", "vs_bogus"]}}
    assert vector_store_ids(stored) == [ident]
    assert vector_store_ids("nonsense") == [] and vector_store_ids({FILE_SEARCH: {}}) == []
    tools = [
        {"type": "function"},
        {"type": FILE_SEARCH, FILE_SEARCH: {"max_num_results": 3, "ranking_options": {}}},
    ]
    assert SearchOptions.of_tools(tools).max_num_results == 3
    assert SearchOptions.of_tools(None) == SearchOptions()


def test_every_registry_resolves_the_builtin_and_a_registered_tool_wins() -> None:
    registry = ToolRegistry()
    assert registry.resolve([FILE_SEARCH]) == [FILE_SEARCH_TOOL]
    assert FILE_SEARCH not in registry.names()  # listed tools stay the registered ones
    with pytest.raises(UnknownToolError) as unknown:
        registry.resolve([FILE_SEARCH, "nope"])
    assert unknown.value.details["unknown"] == ["nope"]

    def file_search(query: str) -> str:
        """Mine."""
        return query

    own = registry.register(build_tool(file_search))
    assert registry.resolve([FILE_SEARCH]) == [own]
