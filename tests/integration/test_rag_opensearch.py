"""The OpenSearch backend's wire format, checked against what OpenSearch documents.

The shared behaviour suite runs in test_rag_index.py (fake, and a real cluster when
OPENSEARCH_URL is set). Here: the exact mapping and request bodies the index sends, that
every query is filtered by tenant, how errors surface, and that the fake rejects the
malformed bodies a real cluster rejects.

Documented shapes (OpenSearch docs, "k-NN vector" field type, "Methods and engines",
"Spaces", "k-NN query" with efficient filtering, "Bulk", "Delete by query", "Terms"
and "Top hits" aggregations):

- index settings ``{"index": {"knn": true}}``; a ``knn_vector`` field has ``dimension``
  and a ``method`` with ``name`` (``hnsw``), ``space_type``, ``engine`` and
  ``parameters`` (``ef_construction``, ``m`` for Lucene HNSW);
- ``{"knn": {FIELD: {"vector": [...], "k": K, "filter": QUERY}}}``;
- bulk bodies are NDJSON: an action line ``{"index": {"_index": ..., "_id": ...}}``
  followed by the document, terminated by a newline.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

pytest.importorskip("opensearchpy")
pytest.importorskip("numpy")

from ai_agents.embeddings import HashingEmbedder  # noqa: E402
from ai_agents.errors import ConfigurationError  # noqa: E402
from ai_agents.rag.embedders import CachingEmbedder  # noqa: E402
from ai_agents.rag.errors import DocumentIndexError  # noqa: E402
from ai_agents.rag.index import Chunk  # noqa: E402
from ai_agents.rag.opensearch_index import (  # noqa: E402
    OpenSearchDocumentIndex,
    QueryBodies,
    index_body,
)
from ai_agents.rag.service import DocumentService  # noqa: E402
from tests.fakes.opensearch_fake import FakeOpenSearch  # noqa: E402
from tests.fakes.server import free_port, serve  # noqa: E402

DIMS = 16
EMBEDDER = CachingEmbedder(HashingEmbedder(DIMS))


@pytest.fixture
def fake() -> FakeOpenSearch:
    return FakeOpenSearch()


@pytest.fixture
def url(fake: FakeOpenSearch) -> Iterator[str]:
    with serve(fake) as base:
        yield base


@pytest.fixture
async def index(url: str) -> AsyncIterator[OpenSearchDocumentIndex]:
    os_index = OpenSearchDocumentIndex(url=url, index="docs", dimensions=DIMS)
    try:
        yield os_index
    finally:
        await os_index.aclose()


def test_index_body_is_the_documented_knn_mapping() -> None:
    body = index_body(384)
    assert body["settings"] == {"index": {"knn": True}}
    mappings = body["mappings"]
    assert mappings["dynamic"] == "strict"
    assert mappings["properties"]["embedding"] == {
        "type": "knn_vector",
        "dimension": 384,
        "method": {
            "name": "hnsw",
            "space_type": "cosinesimil",
            "engine": "lucene",
            "parameters": {"ef_construction": 128, "m": 16},
        },
    }
    props = mappings["properties"]
    for name in ("tenant_id", "entity_id", "file_hash", "source", "embedder"):
        assert props[name] == {"type": "keyword"}, name
    assert props["content"] == {"type": "text", "analyzer": "english"}
    assert props["heading"] == {"type": "text", "analyzer": "english"}
    assert props["metadata"] == {"type": "object", "enabled": False}


async def test_requests_on_the_wire(fake: FakeOpenSearch, index: OpenSearchDocumentIndex) -> None:
    service = DocumentService(index, EMBEDDER)
    result = await service.ingestor.ingest_text(
        "# Pool\n\nThe pool closes at 10 pm.", source="pool.md", tenant_id="t1",
        entity_id="p1", kind="markdown",
    )  # fmt: skip
    await service.search("t1", "pool hours", entity_id="p1", top_k=2)
    await service.list_documents("t1")
    await service.delete("t1", result.file_hash, entity_id="p1")

    calls = [(r.method, r.path) for r in fake.requests]
    assert calls == [
        ("HEAD", "/docs"),
        ("PUT", "/docs"),
        ("POST", "/docs/_count"),
        ("POST", "/docs/_delete_by_query"),
        ("POST", "/_bulk"),
        ("POST", "/docs/_search"),
        ("POST", "/docs/_search"),
        ("POST", "/docs/_search"),
        ("POST", "/docs/_delete_by_query"),
    ]
    assert fake.requests[1].body == index_body(DIMS)
    assert fake.requests[3].params == {"refresh": "true", "conflicts": "proceed"}
    assert fake.requests[4].params == {"refresh": "true"}

    action, document = fake.requests[4].body
    assert action == {"index": {"_index": "docs", "_id": action["index"]["_id"]}}
    assert action["index"]["_id"].endswith(f"-{result.file_hash}-0")
    assert document["tenant_id"] == "t1" and document["entity_id"] == "p1"
    assert document["heading"] == "Pool" and len(document["embedding"]) == DIMS

    scope = [
        {"term": {"tenant_id": "t1"}},
        {"term": {"entity_id": "p1"}},
        {"term": {"embedder": EMBEDDER.name}},
    ]
    text_body, knn_body = sorted(
        (r.body for r in fake.requests[5:7]), key=lambda b: "knn" in b["query"]
    )
    assert text_body == {
        "size": 40,
        "query": {
            "bool": {
                "should": [
                    {"match": {"content": {"query": "pool hours"}}},
                    {"match": {"heading": {"query": "pool hours", "boost": 0.5}}},
                ],
                "minimum_should_match": 1,
                "filter": scope,
            }
        },
    }
    (vector,) = await EMBEDDER.embed(["pool hours"])
    assert knn_body == {
        "size": 40,
        "query": {
            "knn": {
                "embedding": {
                    "vector": pytest.approx(vector),
                    "k": 40,
                    "filter": {"bool": {"filter": scope}},
                }
            }
        },
    }
    assert fake.requests[7].body == QueryBodies.list_documents("t1", None, 100)
    assert fake.requests[7].body["aggs"]["files"]["terms"] == {"field": "file_hash", "size": 100}
    assert fake.requests[8].body == {
        "query": {
            "bool": {
                "filter": [
                    {"term": {"tenant_id": "t1"}},
                    {"term": {"entity_id": "p1"}},
                    {"term": {"file_hash": result.file_hash}},
                ]
            }
        }
    }


async def test_every_read_and_delete_is_filtered_by_tenant(
    fake: FakeOpenSearch, index: OpenSearchDocumentIndex
) -> None:
    service = DocumentService(index, EMBEDDER)
    await service.ingestor.ingest_text("Door code 1234.", source="a.txt", tenant_id="t1")
    await service.search("t1", "door code", top_k=3)
    await service.list_documents("t1")
    await index.delete_document("t1", "abc")
    reads = [r for r in fake.requests if r.path.endswith(("_search", "_count", "_delete_by_query"))]
    # The filter matched what this test did: the search and the listing (at least one
    # _search each) and the delete (a _delete_by_query) are among them.
    kinds = Counter(r.path.rsplit("/", 1)[-1] for r in reads)
    assert kinds["_search"] >= 2 and kinds["_delete_by_query"] >= 1, [
        (r.method, r.path) for r in fake.requests
    ]
    for request in reads:
        text = json.dumps(request.body)
        assert '{"term": {"tenant_id": "t1"}}' in text, request


async def test_existing_index_with_other_dimensions_is_refused(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.put("/docs", json=index_body(8))).status_code == 200
    os_index = OpenSearchDocumentIndex(url=url, index="docs", dimensions=DIMS)
    try:
        with pytest.raises(ConfigurationError, match="8-dimensional"):
            await os_index.setup()
    finally:
        await os_index.aclose()


async def test_rejected_documents_surface_as_index_errors(url: str) -> None:
    body = index_body(DIMS)
    del body["mappings"]["properties"]["heading"]  # an older mapping without the field
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.put("/docs", json=body)).status_code == 200
    os_index = OpenSearchDocumentIndex(url=url, index="docs", dimensions=DIMS)
    chunk = Chunk(file_hash="h" * 32, source="a.txt", position=0, content="x", title="A")
    try:
        with pytest.raises(DocumentIndexError, match="strict_dynamic_mapping_exception"):
            await os_index.replace_document("t", None, [chunk], [[1.0] * DIMS], "e")
        with pytest.raises(ConfigurationError, match="3 dimensions"):
            await os_index.replace_document("t", None, [chunk], [[1.0] * 3], "e")
    finally:
        await os_index.aclose()


async def test_unreachable_cluster_is_an_index_error() -> None:
    os_index = OpenSearchDocumentIndex(
        url=f"http://127.0.0.1:{free_port()}", index="docs", dimensions=DIMS, timeout=2
    )
    try:
        with pytest.raises(DocumentIndexError, match="index exists"):
            await os_index.setup()
    finally:
        await os_index.aclose()


# --- the fake rejects what OpenSearch rejects --------------------------------------


async def _post(client: httpx.AsyncClient, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    response = await client.post(path, json=body)
    return response.status_code, response.json()


async def test_fake_rejects_malformed_requests(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as client:
        # Mappings.
        bad_space = index_body(DIMS)
        bad_space["mappings"]["properties"]["embedding"]["method"]["space_type"] = "l1"
        bad_param = index_body(DIMS)
        bad_param["mappings"]["properties"]["embedding"]["method"]["parameters"]["ef_search"] = 9
        no_dimension = index_body(DIMS)
        del no_dimension["mappings"]["properties"]["embedding"]["dimension"]
        no_knn = index_body(DIMS)
        no_knn["settings"] = {}
        for body, reason in (
            (bad_space, "does not support space type l1"),
            (bad_param, "Invalid parameter"),
            (no_dimension, "Dimension"),
            (no_knn, "index.knn"),
        ):
            response = await client.put("/x", json=body)
            assert response.status_code == 400, reason
            assert reason in response.json()["error"]["reason"]
        assert (await client.put("/docs", json=index_body(DIMS))).status_code == 200
        again = await client.put("/docs", json=index_body(DIMS))
        assert again.json()["error"]["type"] == "resource_already_exists_exception"

        # Searches.
        scope = {"bool": {"filter": [{"term": {"tenant_id": "t"}}]}}
        cases = [
            ({"query": {"fuzzy_magic": {}}}, "unknown query [fuzzy_magic]"),
            ({"query": scope, "highlight": {}}, "Unknown key"),
            ({"query": {"match": {"tenant_id": "t"}}}, "not a text field"),
            ({"query": {"knn": {"embedding": {"vector": [1.0], "k": 3}}}}, "invalid dimension"),
            ({"query": {"knn": {"content": {"vector": [1.0] * DIMS, "k": 3}}}}, "not knn_vector"),
            ({"query": {"knn": {"embedding": {"vector": [1.0] * DIMS}}}}, "k > 0"),
            ({"query": {"bool": {"must": [], "shoud": []}}}, "does not support [shoud]"),
            ({"size": 0, "aggs": {"f": {"terms": {"field": "content"}}}}, "Text fields"),
            ({"size": 0, "aggs": {"f": {"histogram": {}}}}, "Unknown aggregation type"),
        ]
        for body, reason in cases:
            status, payload = await _post(client, "/docs/_search", body)
            assert status == 400, body
            assert reason in payload["error"]["reason"], (body, payload)
        status, payload = await _post(client, "/docs/_delete_by_query", {})
        assert status == 400 and "requires a body with a query" in payload["error"]["reason"]
        status, payload = await _post(client, "/missing/_search", {"query": scope})
        assert status == 404 and payload["error"]["type"] == "index_not_found_exception"

        # Bulk: per-item errors, and NDJSON must end with a newline.
        doc = {"tenant_id": "t", "surprise": 1}
        ndjson = json.dumps({"index": {"_index": "docs", "_id": "1"}}) + "\n" + json.dumps(doc)
        response = await client.post(
            "/_bulk", content=ndjson, headers={"content-type": "application/x-ndjson"}
        )
        assert response.status_code == 400
        response = await client.post(
            "/_bulk", content=ndjson + "\n", headers={"content-type": "application/x-ndjson"}
        )
        result = response.json()
        assert result["errors"] is True
        assert result["items"][0]["index"]["error"]["type"] == "strict_dynamic_mapping_exception"
        wrong_vector = {"tenant_id": "t", "embedding": [1.0, 2.0]}
        ndjson = json.dumps({"index": {"_index": "docs"}}) + "\n" + json.dumps(wrong_vector) + "\n"
        result = (await client.post("/_bulk", content=ndjson)).json()
        assert "Vector dimension mismatch" in result["items"][0]["index"]["error"]["reason"]


async def test_fake_scores_like_opensearch(url: str) -> None:
    """BM25 ranks the rarer term higher; Lucene cosinesimil scores (1 + cos) / 2."""
    async with httpx.AsyncClient(base_url=url) as client:
        await client.put("/docs", json=index_body(2))
        lines = []
        for ident, content, vec in (
            ("a", "pool pool towels", [1.0, 0.0]),
            ("b", "pool gym", [0.0, 1.0]),
            ("c", "gym weights", [-1.0, 0.0]),
        ):
            lines.append(json.dumps({"index": {"_index": "docs", "_id": ident}}))
            lines.append(json.dumps({"tenant_id": "t", "content": content, "embedding": vec}))
        result = (await client.post("/_bulk", content="\n".join(lines) + "\n")).json()
        assert result["errors"] is False
        _, text = await _post(
            client, "/docs/_search", {"query": {"match": {"content": {"query": "towels"}}}}
        )
        assert [h["_id"] for h in text["hits"]["hits"]] == ["a"]
        _, knn = await _post(
            client,
            "/docs/_search",
            {"query": {"knn": {"embedding": {"vector": [1.0, 0.0], "k": 3}}}},
        )
        scores = {h["_id"]: h["_score"] for h in knn["hits"]["hits"]}
        assert scores == pytest.approx({"a": 1.0, "b": 0.5, "c": 0.0})
        _, filtered = await _post(
            client,
            "/docs/_search",
            {
                "query": {
                    "knn": {
                        "embedding": {
                            "vector": [1.0, 0.0],
                            "k": 2,
                            "filter": {"term": {"content": "gym"}},
                        }
                    }
                }
            },
        )
        assert [h["_id"] for h in filtered["hits"]["hits"]] == ["b", "c"]
