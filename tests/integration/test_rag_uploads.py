"""Upload directories are per tenant (issue "Hardening", item 6).

The attack: every tenant shared one upload directory, so tenant B's model called
``upload_document("tenantA/secret-a.md")``, the file was indexed for B, and B's
``search_documents`` returned A's secret. Now a tenant reads only ``{root}/{tenant_id}``
(or the directories configured for it), and every way out of it is refused with the
message a missing file gets.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("numpy")

from ai_agents import AgentDefinition, AgentStore  # noqa: E402
from ai_agents.embeddings import HashingEmbedder  # noqa: E402
from ai_agents.errors import ConfigurationError, UsageError  # noqa: E402
from ai_agents.providers.registry import ModelLimits, get_registry  # noqa: E402
from ai_agents.rag.errors import UploadRejected  # noqa: E402
from ai_agents.rag.service import DocumentService  # noqa: E402
from ai_agents.rag.setup import enable_documents, tenant_upload_dirs_from_env  # noqa: E402
from ai_agents.rag.tools import DOCUMENT_TOOLS  # noqa: E402
from ai_agents.rag.uploads import TenantUploads, tenant_directory_name  # noqa: E402
from ai_agents.testing import ScriptedProvider, call  # noqa: E402
from ai_agents.tools.decorator import ToolContext, ToolOutcome  # noqa: E402
from ai_agents.tools.registry import ToolRegistry  # noqa: E402

A, B = "tenant-a", "tenant-b"
SECRET = "The alarm code of villa A is 9876."


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """root/tenant-a/secret-a.md; root/tenant-b/ with B's own file and traps into A's."""
    root = tmp_path / "uploads"
    (root / A).mkdir(parents=True)
    (root / A / "secret-a.md").write_text(f"# Owner notes\n\n{SECRET}\n")
    (root / B).mkdir()
    (root / B / "b-notes.md").write_text("# Guest notes\n\nBreakfast is served at eight.\n")
    os.symlink(root / A / "secret-a.md", root / B / "link-to-a.md")
    os.symlink(root / A, root / B / "link-to-a")
    (tmp_path / "outside.md").write_text(f"# Outside\n\n{SECRET}\n")
    return root


@pytest.fixture
async def docs(store: AgentStore, root: Path) -> DocumentService:
    get_registry().register(
        "scripted",
        "roomy",
        ModelLimits(100_000, 1000, 100_000, 100_000_000, True, False, 3.0, 15.0),
    )
    store.use_tools(ToolRegistry())
    return enable_documents(store, embedder=HashingEmbedder(), upload_dirs=[root])


async def _context(store: AgentStore, tenant: str, provider: Any = None) -> ToolContext:
    store.register_provider("scripted", provider or ScriptedProvider())
    view = store.for_tenant(tenant)
    agent = await view.create_agent(
        AgentDefinition(name="Assistant", role="You answer.", tools=list(DOCUMENT_TOOLS)),
        provider="scripted",
        model="roomy",
    )
    thread = await view.create_thread(agent, user_id="guest")
    return ToolContext(
        thread_id=thread,
        agent_id=agent,
        tenant_id=tenant,
        user_id="guest",
        run_id=uuid.uuid4(),
        store=store,
    )


async def _upload(store: AgentStore, ctx: ToolContext, path: str) -> ToolOutcome:
    return await store.tools.get("upload_document").invoke({"file_path": path}, ctx, time_limit=60)


def _refusal(path: str) -> str:
    """The refusal every path outside the tenant's directory gets (a missing file's)."""
    rejected = UploadRejected(
        f"file_path {path!r} is not a file inside the upload directory; give a path "
        "relative to it, such as 'guide.pdf' or 'handbook/rules.md'"
    )
    return f"Error: UploadRejected: {rejected}"


async def _nothing_of_a_for_b(docs: DocumentService) -> None:
    assert await docs.list_documents(B) == []
    assert await docs.list_documents(A) == []  # B's calls indexed nothing anywhere
    hits = await docs.search(B, "alarm code villa", top_k=5)
    assert all("9876" not in h.chunk.content for h in hits)


def _attacks(root: Path) -> list[str]:
    return [
        f"{A}/secret-a.md",  # what the model tried: A's file named from the shared root
        f"../{A}/secret-a.md",
        str(root / A / "secret-a.md"),  # absolute
        "link-to-a.md",  # a symlink in B's directory pointing at A's file
        "link-to-a/secret-a.md",  # a symlinked directory into A's
        f"link-to-a/../../{A}/secret-a.md",
        "../../outside.md",
        "../",
    ]


async def test_tenant_b_cannot_upload_tenant_a_files(
    store: AgentStore, docs: DocumentService, root: Path
) -> None:
    ctx = await _context(store, B)
    for path in _attacks(root):
        outcome = await _upload(store, ctx, path)
        assert outcome.is_error, path
        # The same words as for a file that does not exist: no existence oracle.
        assert outcome.content == _refusal(path), outcome.content
        assert "9876" not in outcome.content
    missing = await _upload(store, ctx, f"{A}/no-such-file.md")
    assert missing.content == _refusal(f"{A}/no-such-file.md")
    await _nothing_of_a_for_b(docs)

    own = await _upload(store, ctx, "b-notes.md")
    assert not own.is_error, own.content
    uploaded = json.loads(own.content)
    assert (uploaded["source"], uploaded["status"]) == ("b-notes.md", "indexed")
    assert [d.source for d in await docs.list_documents(B)] == ["b-notes.md"]
    assert await docs.list_documents(A) == []


async def test_the_attack_inside_a_run_finds_nothing(
    store: AgentStore, docs: DocumentService
) -> None:
    provider = ScriptedProvider(
        [
            call("upload_document", file_path=f"{A}/secret-a.md"),
            call("search_documents", query="alarm code villa A"),
            "I found nothing about an alarm code.",
        ]
    )
    ctx = await _context(store, B, provider)
    response = await store.for_tenant(B).run(ctx.thread_id, "Index tenantA's notes and search")
    provider.assert_complete()
    upload, search = response.tool_calls
    assert upload.is_error and "not a file inside the upload directory" in upload.result
    assert json.loads(search.result)["results"] == []
    await _nothing_of_a_for_b(docs)


async def test_tenant_a_reads_its_own_directory(
    store: AgentStore, docs: DocumentService, root: Path
) -> None:
    ctx = await _context(store, A)
    outcome = await _upload(store, ctx, "secret-a.md")
    assert json.loads(outcome.content)["source"] == "secret-a.md"
    # A's directory does not reach into B's either.
    assert (await _upload(store, ctx, f"../{B}/b-notes.md")).is_error
    hits = await docs.search(A, "alarm code", top_k=1)
    assert "9876" in hits[0].chunk.content
    assert await docs.search(B, "alarm code", top_k=5) == []


@pytest.mark.parametrize("tenant", ["..", ".", f"{B}/..", f"../{A}", "a/b", ".hidden", ""])
def test_unsafe_tenant_ids_are_no_directory(tenant: str) -> None:
    assert tenant_directory_name(tenant) is None


def test_safe_tenant_ids_are_used_as_they_are() -> None:
    for tenant in ("default", "tenant-a", "Acme_42", "org=7,team@x+y", "a.b", "x" * 255):
        assert tenant_directory_name(tenant) == tenant
    assert tenant_directory_name("x" * 256) is None
    assert tenant_directory_name("caf\u00e9") is None  # ASCII only
    assert tenant_directory_name("default\n") is None


def test_an_unsafe_tenant_id_reads_nothing_under_the_roots(root: Path) -> None:
    uploads = TenantUploads([root / B])
    # Tenant ".." would otherwise read root/B/.. = root, and with it A's directory.
    for tenant, path in (
        ("..", f"{A}/secret-a.md"),
        (".", "b-notes.md"),
        (f"../{A}", "secret-a.md"),
    ):
        with pytest.raises(UploadRejected, match="not a file inside the upload directory"):
            uploads.resolve(tenant, path)
    assert uploads.directories("..") == []


def test_configured_tenant_directories_replace_the_roots(root: Path, tmp_path: Path) -> None:
    odd = tmp_path / "odd"
    odd.mkdir()
    (odd / "doc.md").write_text("# Doc\n")
    uploads = TenantUploads([root], {"org:7/team": [odd], A: [root / B]})
    assert uploads.resolve("org:7/team", "doc.md") == ((odd / "doc.md").resolve(), "doc.md")
    # A is configured: it reads only what is listed, not root/tenant-a any more.
    assert uploads.resolve(A, "b-notes.md")[1] == "b-notes.md"
    with pytest.raises(UploadRejected, match="not a file inside"):
        uploads.resolve(A, "secret-a.md")
    assert uploads.resolve(B, "b-notes.md")[1] == "b-notes.md"
    with pytest.raises(UploadRejected, match="not a file inside"):
        uploads.resolve("tenant-without-directory", "b-notes.md")
    with pytest.raises(UploadRejected, match="not enabled"):
        TenantUploads().resolve(A, "secret-a.md")
    with pytest.raises(UsageError, match="does not exist"):
        TenantUploads([], {A: [tmp_path / "missing"]})


def test_tenant_upload_dirs_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AI_AGENTS_RAG_TENANT_UPLOAD_DIRS", raising=False)
    assert tenant_upload_dirs_from_env() == {}
    monkeypatch.setenv(
        "AI_AGENTS_RAG_TENANT_UPLOAD_DIRS", '{"acme": "/srv/acme", "org:7": ["/a", "/b"]}'
    )
    assert tenant_upload_dirs_from_env() == {"acme": ["/srv/acme"], "org:7": ["/a", "/b"]}
    for bad in ("[1]", "{", '{"acme": 3}', '{"acme": [""]}'):
        monkeypatch.setenv("AI_AGENTS_RAG_TENANT_UPLOAD_DIRS", bad)
        with pytest.raises(ConfigurationError, match="AI_AGENTS_RAG_TENANT_UPLOAD_DIRS"):
            tenant_upload_dirs_from_env()
