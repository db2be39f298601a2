"""How an MCP tools/call result reads to the model (ai_agents.mcp.results)."""

from __future__ import annotations

import mcp_types as types

from ai_agents.mcp.results import MAX_RESULT_CHARS, describe_result


def _result(*content: types.ContentBlock, **fields: object) -> types.CallToolResult:
    return types.CallToolResult(content=list(content), **fields)  # type: ignore[arg-type]


def test_text_blocks_are_joined() -> None:
    outcome = describe_result(_result(types.TextContent(text="one"), types.TextContent(text="two")))
    assert (outcome.content, outcome.is_error) == ("one\ntwo", False)


def test_structured_content_without_text_is_json() -> None:
    outcome = describe_result(_result(structured_content={"sum": 3, "ok": True}))
    assert outcome.content == '{"sum": 3, "ok": true}'


def test_text_wins_over_structured_content() -> None:
    outcome = describe_result(
        _result(types.TextContent(text="3"), structured_content={"result": 3})
    )
    assert outcome.content == "3"


def test_binary_content_is_described() -> None:
    outcome = describe_result(
        _result(
            types.ImageContent(data="AAAA", mime_type="image/png"),
            types.AudioContent(data="AAAA", mime_type="audio/wav"),
            types.ResourceLink(uri="file:///a.txt", name="a.txt", mime_type="text/plain"),
            types.EmbeddedResource(
                resource=types.BlobResourceContents(uri="file:///b.bin", blob="AAAA")
            ),
            types.EmbeddedResource(
                resource=types.TextResourceContents(uri="file:///c.txt", text="inline text")
            ),
        )
    )
    assert outcome.content.splitlines() == [
        "[image: image/png, 3 bytes]",
        "[audio: audio/wav, 3 bytes]",
        "[resource link: file:///a.txt (a.txt, text/plain)]",
        "[resource: file:///b.bin, binary, 3 bytes]",
        "inline text",
    ]


def test_is_error_is_a_tool_error() -> None:
    outcome = describe_result(_result(types.TextContent(text="bad input"), is_error=True))
    assert (outcome.content, outcome.is_error) == ("Error: bad input", True)
    assert describe_result(_result(is_error=True)).content == "Error"


def test_empty_and_huge_results() -> None:
    assert describe_result(_result()).content == "(no output)"
    huge = describe_result(_result(types.TextContent(text="x" * (MAX_RESULT_CHARS + 10))))
    assert huge.content.startswith("x" * MAX_RESULT_CHARS)
    assert huge.content.endswith("[... cut: 10 more characters]")
