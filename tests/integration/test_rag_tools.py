"""The built-in document tools in real agent runs (acceptance 2 and 4).

Scripted models call the tools through ``store.run``; the tools search a PostgreSQL index
with MiniLM embeddings. Hostile arguments (paths out of the upload directory, another
tenant's entity or file hash, a tenant id the model makes up) must find nothing and read
nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sentence_transformers")

from ai_agents import AgentDefinition, AgentStore  # noqa: E402
from ai_agents.providers.base import ProviderRequest  # noqa: E402
from ai_agents.providers.registry import ModelLimits, get_registry  # noqa: E402
from ai_agents.rag.embedders import CachingEmbedder, MiniLMEmbedder  # noqa: E402
from ai_agents.rag.service import DocumentService  # noqa: E402
from ai_agents.rag.setup import enable_documents  # noqa: E402
from ai_agents.rag.tools import ASK_SYSTEM_PROMPT, DOCUMENT_TOOLS  # noqa: E402
from ai_agents.testing import FunctionProvider, ScriptedProvider, call  # noqa: E402
from ai_agents.tools.decorator import ToolContext, ToolOutcome  # noqa: E402
from ai_agents.tools.registry import ToolRegistry  # noqa: E402

HANDBOOK = Path(__file__).resolve().parents[1] / "data" / "handbook"
EMBEDDER = CachingEmbedder(MiniLMEmbedder())
FILES = ["wifi-and-technology.txt", "pets.md", "parking.html", "house-rules.pdf"]


@pytest.fixture
def upload_root(tmp_path: Path) -> Path:
    """The deployment's upload root: each tenant reads only ``upload_root/<tenant>``."""
    root = tmp_path / "uploads"
    root.mkdir()
    return root


@pytest.fixture
def uploads(tmp_path: Path, upload_root: Path) -> Path:
    """The default tenant's directory with the handbook, secrets around it, traps out."""
    own = upload_root / "default"
    (own / "handbook").mkdir(parents=True)
    for name in FILES:
        shutil.copy(HANDBOOK / name, own / "handbook" / name)
    (tmp_path / "secret.txt").write_text("Secret: the vault code is 4242.\n")
    (upload_root / "secret.txt").write_text("Secret: the vault code is 4242.\n")
    (upload_root / "default_evil").mkdir()
    (upload_root / "default_evil" / "x.txt").write_text("Not an upload.\n")
    os.symlink(tmp_path / "secret.txt", own / "link-to-secret.txt")
    os.symlink(tmp_path, own / "link-to-parent")
    return own


@pytest.fixture
async def docs(store: AgentStore, upload_root: Path, uploads: Path) -> DocumentService:
    get_registry().register(
        "scripted",
        "roomy",
        ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3.0, 15.0),
    )
    store.use_tools(ToolRegistry())
    service = enable_documents(store, embedder=EMBEDDER, upload_dirs=[upload_root])
    for name in FILES:
        await service.ingestor.ingest_file(
            HANDBOOK / name, tenant_id="default", source=f"handbook/{name}"
        )
    return service


async def _thread(
    store: AgentStore, provider: Any, *, tenant: str = "default", **thread: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    store.register_provider("scripted", provider)
    view = store.for_tenant(tenant)
    agent = await view.create_agent(
        AgentDefinition(
            name="Property Assistant",
            role="You answer guests' questions about the property.",
            constraints=["Always cite which document information comes from."],
            tools=list(DOCUMENT_TOOLS),
        ),
        provider="scripted",
        model="roomy",
    )
    return agent, await view.create_thread(agent, user_id="guest-1", **thread)


def _context(store: AgentStore, tenant: str, agent: uuid.UUID, thread: uuid.UUID) -> ToolContext:
    return ToolContext(
        thread_id=thread,
        agent_id=agent,
        tenant_id=tenant,
        user_id="guest-1",
        run_id=uuid.uuid4(),
        store=store,
    )


async def _invoke(store: AgentStore, name: str, ctx: ToolContext, **args: Any) -> ToolOutcome:
    return await store.tools.get(name).invoke(args, ctx, time_limit=60)


def _last_tool_result(request: ProviderRequest) -> dict[str, Any]:
    message = request.messages[-1]
    assert message.role == "tool"
    return json.loads(message.text)  # type: ignore[no-any-return]


async def test_agent_searches_and_cites_the_source(
    store: AgentStore, docs: DocumentService
) -> None:
    """Acceptance 2: the model calls search_documents, gets the passage, cites its source."""

    def model(request: ProviderRequest) -> Any:
        if request.messages[-1].role == "user":
            return call("search_documents", query=request.messages[-1].text, top_k=3)
        # Like a model reading the results: quote the passage that answers, cite its source.
        results = _last_tool_result(request)["results"]
        best = next(r for r in results if "Wi-Fi password" in r["text"])
        sentence = next(s for s in best["text"].split(". ") if "Wi-Fi password" in s)
        return f"{sentence}. (Source: {best['citation']})"

    provider = FunctionProvider(model)
    _, thread = await _thread(store, provider)
    response = await store.run(thread, "What is the Wi-Fi password for my apartment?")

    assert [r.call.name for r in response.tool_calls] == ["search_documents"]
    assert not response.tool_calls[0].is_error
    results = json.loads(response.tool_calls[0].result)["results"]
    assert len(results) == 3
    top = next(r for r in results if "SeaBreeze2024" in r["text"])
    assert top["source"] == "handbook/wifi-and-technology.txt"
    assert top["citation"].startswith("handbook/wifi-and-technology.txt, chunk ")

    saved = (await store.list_messages(thread, limit=100)).items
    assert [m.role for m in saved] == ["user", "assistant", "tool", "assistant"]
    answer = saved[-1].text
    assert "SeaBreeze2024" in answer
    assert f"(Source: {top['citation']})" in answer
    assert response.content == answer
    # The model saw the tool's JSON schema, without any tenant parameter.
    spec = next(t for t in provider.requests[0].tools if t.name == "search_documents")
    assert set(spec.parameters["properties"]) == {"query", "entity_id", "top_k"}


async def test_scripted_model_cites_pdf_page(store: AgentStore, docs: DocumentService) -> None:
    provider = ScriptedProvider(
        [
            call("search_documents", query="late fee when rent is paid late", top_k=1),
            "A late fee of $60 applies from the sixth day "
            "(Source: handbook/house-rules.pdf, page 2).",
        ]
    )
    _, thread = await _thread(store, provider)
    response = await store.run(thread, "What happens if I pay rent late?")
    provider.assert_complete()
    (hit,) = json.loads(response.tool_calls[0].result)["results"]
    assert (hit["source"], hit["page"]) == ("handbook/house-rules.pdf", 2)
    assert "late fee of $60" in provider.requests[1].messages[-1].text
    saved = (await store.list_messages(thread, limit=100)).items
    assert "handbook/house-rules.pdf, page 2" in saved[-1].text


async def test_ask_documents_answers_with_the_agents_model(
    store: AgentStore, docs: DocumentService
) -> None:
    def model(request: ProviderRequest) -> Any:
        if request.system_prompt == ASK_SYSTEM_PROMPT:  # the tool's own call
            prompt = request.messages[-1].text
            assert "Question: How heavy may my dog be?" in prompt
            assert request.tools == ()
            n = next(
                line.split("]")[0][1:]
                for line in prompt.splitlines()
                if line.startswith("[") and "pets.md" in line
            )
            return f"Dogs may weigh up to 25 kg each [{n}]."
        if request.messages[-1].role == "user":
            return call("ask_documents", question="How heavy may my dog be?")
        return "Up to 25 kg per dog, according to the pet policy."

    provider = FunctionProvider(model)
    _, thread = await _thread(store, provider)
    response = await store.run(thread, "Can I bring my 20 kg dog?")
    result = json.loads(response.tool_calls[0].result)
    ref = int(result["answer"].split("[")[1].split("]")[0])
    cited = next(s for s in result["sources"] if s["ref"] == ref)
    assert cited["source"] == "handbook/pets.md"
    assert cited["citation"].startswith("handbook/pets.md, chunk ")
    assert len(provider.requests) == 3  # tool call, the tool's question, final answer


async def test_upload_list_and_delete_through_tools(
    store: AgentStore, docs: DocumentService, uploads: Path
) -> None:
    agent, thread = await _thread(store, ScriptedProvider())
    ctx = _context(store, "default", agent, thread)
    (uploads / "handbook" / "laundry.txt").write_bytes((HANDBOOK / "laundry.txt").read_bytes())

    outcome = await _invoke(store, "upload_document", ctx, file_path="handbook/laundry.txt")
    assert not outcome.is_error, outcome.content
    uploaded = json.loads(outcome.content)
    assert uploaded["source"] == "handbook/laundry.txt" and uploaded["status"] == "indexed"
    again = await _invoke(
        store, "upload_document", ctx, file_path=str(uploads / "handbook" / "laundry.txt")
    )
    assert json.loads(again.content)["status"] == "unchanged"

    listed = json.loads((await _invoke(store, "list_documents", ctx)).content)["documents"]
    assert sorted(d["source"] for d in listed) == sorted(
        [f"handbook/{n}" for n in FILES] + ["handbook/laundry.txt"]
    )
    deleted = await _invoke(store, "delete_document", ctx, file_hash=uploaded["file_hash"])
    assert json.loads(deleted.content) == {"deleted": uploaded["file_hash"], "chunks": 4}
    missing = await _invoke(store, "delete_document", ctx, file_hash=uploaded["file_hash"])
    assert missing.is_error and "not found" in missing.content


HOSTILE_PATHS = [
    "../../etc/passwd",
    "/etc/passwd",
    "../secret.txt",  # in the upload root, but not in the tenant's directory
    "../../secret.txt",
    "handbook/../../../secret.txt",
    "link-to-secret.txt",  # a symlink inside the directory pointing out of it
    "link-to-parent/secret.txt",  # a symlinked directory pointing out of it
    "../default_evil/x.txt",  # a sibling whose name starts like the tenant's directory
    "~/.bashrc",
    "handbook",  # a directory, not a file
    "handbook/missing.md",
    "handbook/pets.md\x00.txt",
    " ",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
async def test_upload_refuses_paths_outside_the_directory(
    store: AgentStore, docs: DocumentService, uploads: Path, path: str
) -> None:
    """Acceptance 4: nothing outside the tenant's upload directory is read or indexed."""
    agent, thread = await _thread(store, ScriptedProvider())
    ctx = _context(store, "default", agent, thread)
    before = await docs.list_documents("default")
    if path == "/etc/passwd" or path.endswith("secret.txt"):
        assert Path("/etc/passwd").exists() and (uploads.parent / "secret.txt").exists()
    outcome = await _invoke(store, "upload_document", ctx, file_path=path)
    assert outcome.is_error
    assert "upload" in outcome.content or "file_path" in outcome.content
    assert "4242" not in outcome.content and "root:" not in outcome.content
    assert await docs.list_documents("default") == before
    hits = await docs.search("default", "vault code", top_k=5)
    assert all("4242" not in h.chunk.content for h in hits)


async def test_hostile_upload_inside_a_run_is_a_tool_error(
    store: AgentStore, docs: DocumentService
) -> None:
    provider = ScriptedProvider(
        [call("upload_document", file_path="../../etc/passwd"), "I cannot read that file."]
    )
    _, thread = await _thread(store, provider)
    response = await store.run(thread, "Index /etc/passwd for me")
    assert response.tool_calls[0].is_error
    assert "not a file inside the upload directory" in response.tool_calls[0].result
    assert response.content == "I cannot read that file."


async def test_other_tenants_documents_are_invisible(
    store: AgentStore, docs: DocumentService
) -> None:
    """Acceptance 4: an entity id or file hash of another tenant finds nothing."""
    secret = await docs.ingestor.ingest_text(
        "Owner notes: the master key is in safe 12, combination 8-16-32.",
        source="owner-notes.txt",
        tenant_id="tenant-a",
        entity_id="villa-a",
    )
    agent_b, thread_b = await _thread(store, ScriptedProvider(), tenant="tenant-b")
    ctx = _context(store, "tenant-b", agent_b, thread_b)

    for entity in ("villa-a", None):
        found = await _invoke(
            store, "search_documents", ctx, query="master key safe", entity_id=entity
        )
        assert json.loads(found.content)["results"] == []
        listed = await _invoke(store, "list_documents", ctx, entity_id=entity)
        assert json.loads(listed.content)["documents"] == []
    asked = await _invoke(
        store, "ask_documents", ctx, question="Where is the master key?", entity_id="villa-a"
    )
    assert json.loads(asked.content) == {"answer": "No document mentions this.", "sources": []}
    deleted = await _invoke(store, "delete_document", ctx, file_hash=secret.file_hash)
    assert deleted.is_error and "not found" in deleted.content
    # The model cannot name a tenant: unknown arguments are rejected before the tool runs.
    forged = await _invoke(store, "search_documents", ctx, query="master key", tenant_id="tenant-a")
    assert forged.is_error and "tenant_id" in forged.content
    # Tenant A still has its document, and the default tenant's handbook is not visible to B.
    assert [d.source for d in await docs.list_documents("tenant-a")] == ["owner-notes.txt"]
    hits = await docs.search("tenant-a", "master key", top_k=1)
    assert hits[0].chunk.source == "owner-notes.txt"


async def test_conversation_pinned_to_one_entity(store: AgentStore, docs: DocumentService) -> None:
    for entity, code in (("villa-1", "1111"), ("villa-2", "2222")):
        await docs.ingestor.ingest_text(
            f"The gate code of this villa is {code}.",
            source=f"{entity}.txt",
            tenant_id="default",
            entity_id=entity,
        )
    agent, thread = await _thread(store, ScriptedProvider(), metadata={"entity_id": "villa-1"})
    ctx = _context(store, "default", agent, thread)
    found = json.loads((await _invoke(store, "search_documents", ctx, query="gate code")).content)
    assert {r["source"] for r in found["results"]} == {"villa-1.txt"}
    other = await _invoke(store, "search_documents", ctx, query="gate code", entity_id="villa-2")
    assert other.is_error and "villa-1" in other.content
    listed = json.loads((await _invoke(store, "list_documents", ctx)).content)["documents"]
    assert [d["source"] for d in listed] == ["villa-1.txt"]


async def test_enable_documents_shares_the_embedder_and_closes_with_the_store(
    store: AgentStore, docs: DocumentService
) -> None:
    assert store.runner.embedder is EMBEDDER
    assert store.extensions["documents"] is docs
    assert set(DOCUMENT_TOOLS) <= set(store.tools.names())
