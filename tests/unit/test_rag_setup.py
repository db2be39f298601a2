"""Wiring from the environment, the upload directory rules, and light imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("numpy")

from ai_agents.errors import ConfigurationError, UsageError  # noqa: E402
from ai_agents.rag.errors import UploadRejected  # noqa: E402
from ai_agents.rag.tools import DOCUMENT_TOOLS, UploadDirectories  # noqa: E402
from ai_agents.tools.registry import ToolRegistry  # noqa: E402


async def test_register_from_env_builds_the_configured_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    pytest.importorskip("numpy")
    from ai_agents.embeddings import HashingEmbedder
    from ai_agents.rag.pg_index import PgDocumentIndex
    from ai_agents.rag.setup import register_from_env

    monkeypatch.setenv("AI_AGENTS_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/unused")
    monkeypatch.setenv("AI_AGENTS_RAG_EMBEDDER", "hashing@64")
    monkeypatch.setenv("AI_AGENTS_RAG_UPLOAD_DIRS", f"{tmp_path}{os.pathsep}{tmp_path}")
    registry = ToolRegistry()
    service = register_from_env(registry)
    try:
        assert set(registry.names()) == set(DOCUMENT_TOOLS)
        assert isinstance(service.index, PgDocumentIndex)
        assert isinstance(service.embedder, HashingEmbedder) and service.embedder.dimensions == 64
        schema = registry.get("search_documents").parameters
        assert schema["required"] == ["query"]
        assert schema["properties"]["top_k"]["maximum"] == 50
        assert "tenant_id" not in schema["properties"]
    finally:
        await service.aclose()

    monkeypatch.setenv("AI_AGENTS_RAG_BACKEND", "opensearch")
    monkeypatch.delenv("OPENSEARCH_URL", raising=False)
    with pytest.raises(ConfigurationError, match="OPENSEARCH_URL"):
        register_from_env(ToolRegistry())
    monkeypatch.setenv("AI_AGENTS_RAG_BACKEND", "sqlite")
    with pytest.raises(ConfigurationError, match="'postgresql' or 'opensearch', got 'sqlite'"):
        register_from_env(ToolRegistry())


def test_upload_directories_resolve_inside_only(tmp_path: Path) -> None:
    root = tmp_path / "up"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.md").write_text("# A\n")
    (root / "b.exe").write_bytes(b"MZ")
    (tmp_path / "out.md").write_text("# Out\n")
    dirs = UploadDirectories([root])
    assert dirs.resolve("sub/a.md") == ((root / "sub" / "a.md").resolve(), "sub/a.md")
    assert dirs.resolve(str(root / "sub" / "a.md"))[1] == "sub/a.md"
    assert dirs.resolve("sub/../sub/a.md")[1] == "sub/a.md"  # stays inside: fine
    for hostile in ("../out.md", str(tmp_path / "out.md"), "sub/../../out.md", "", "sub"):
        with pytest.raises(UploadRejected):
            dirs.resolve(hostile)
    with pytest.raises(UploadRejected, match="unsupported file type"):
        dirs.resolve("b.exe")
    with pytest.raises(UploadRejected, match="not enabled"):
        UploadDirectories([]).resolve("sub/a.md")
    with pytest.raises(UsageError, match="does not exist"):
        UploadDirectories([tmp_path / "missing"])


def test_cli_plugin_imports_no_heavy_dependencies() -> None:
    code = (
        "import sys, ai_agents.rag.cli\n"
        "from ai_agents.cli import COMMANDS\n"
        "heavy = [m for m in ('numpy', 'torch', 'sentence_transformers', 'opensearchpy', 'pypdf')"
        " if m in sys.modules]\n"
        "print(heavy, 'ingest' in COMMANDS)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "[] True"
