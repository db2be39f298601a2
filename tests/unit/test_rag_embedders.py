"""Embedders: MiniLM offline (real model), Ollama /api/embed and OpenAI /embeddings over HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import httpx
import pytest

from ai_agents.embeddings import Embedder, HashingEmbedder
from ai_agents.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderRateLimited,
)
from ai_agents.rag.embedders import (
    CachingEmbedder,
    MiniLMEmbedder,
    OllamaEmbedder,
    OpenAIEmbedder,
    embedder_from_spec,
)
from tests.fakes.server import free_port, serve

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _vector(text: str, dims: int) -> list[float]:
    """A deterministic, non-normalized vector per text (the embedder must normalize it)."""
    return [float((ord(text[i % len(text)]) % 7) + 1 + i) for i in range(dims)]


class FakeEmbeddings:
    """Ollama ``/api/embed`` and OpenAI ``/v1/embeddings``, strict about their bodies."""

    def __init__(self, dims: int = 8) -> None:
        self.dims = dims
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.fail: tuple[int, dict[str, Any], dict[str, str]] | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw)
        self.bodies.append(body)
        self.headers.append({k.decode(): v.decode() for k, v in scope["headers"]})
        if self.fail is not None:
            status, payload, headers = self.fail
            return await _reply(send, status, payload, headers)
        if scope["path"] == "/api/embed":
            if set(body) - {"model", "input", "truncate", "options", "keep_alive", "dimensions"}:
                return await _reply(send, 400, {"error": "unknown field"})
            if body.get("model") != "nomic-embed-text":
                return await _reply(send, 404, {"error": f'model "{body.get("model")}" not found'})
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            payload = {
                "model": body["model"],
                "embeddings": [_vector(t, self.dims) for t in inputs],
                "total_duration": 1,
                "load_duration": 1,
                "prompt_eval_count": len(inputs),
            }
            return await _reply(send, 200, payload)
        if scope["path"] == "/v1/embeddings":
            if not isinstance(body.get("input"), list) or body.get("encoding_format") != "float":
                return await _reply(send, 400, {"error": {"message": "bad input"}})
            dims = body.get("dimensions", self.dims)
            data = [
                {"object": "embedding", "index": i, "embedding": _vector(t, dims)}
                for i, t in enumerate(body["input"])
            ]
            data.reverse()  # the API does not promise order: the client must sort by index
            payload = {"object": "list", "data": data, "model": body["model"], "usage": {}}
            return await _reply(send, 200, payload)
        return await _reply(send, 404, {"error": "no route"})


async def _reply(
    send: Send, status: int, payload: Any, headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(payload).encode()
    extra = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), *extra],
        }
    )
    await send({"type": "http.response.body", "body": data})


@pytest.fixture
def fake() -> FakeEmbeddings:
    return FakeEmbeddings()


@pytest.fixture
def url(fake: FakeEmbeddings) -> Iterator[str]:
    with serve(fake) as base:
        yield base


def _unit(vec: list[float]) -> bool:
    return math.isclose(sum(x * x for x in vec), 1.0, rel_tol=1e-5)


async def test_minilm_offline_semantic_unit_vectors() -> None:
    pytest.importorskip("sentence_transformers")
    embedder = MiniLMEmbedder(batch_size=2)
    assert isinstance(embedder, Embedder)
    texts = ["What time is checkout?", "Check-out is by 11 am.", "The pool closes at 10 pm."]
    vectors = await embedder.embed(texts)
    assert [len(v) for v in vectors] == [384] * 3 and all(_unit(v) for v in vectors)

    def cos(a: list[float], b: list[float]) -> float:
        return sum(x * y for x, y in zip(a, b, strict=True))

    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2
    assert await embedder.embed([]) == []
    # Same model object for every instance (loaded once per process).
    assert MiniLMEmbedder().model() is embedder.model()


async def test_ollama_embedder_batches_and_normalizes(fake: FakeEmbeddings, url: str) -> None:
    embedder = OllamaEmbedder(base_url=url, dimensions=8, batch_size=2)
    try:
        vectors = await embedder.embed(["a", "bb", "ccc"])
    finally:
        await embedder.aclose()
    assert [b["input"] for b in fake.bodies] == [["a", "bb"], ["ccc"]]
    assert all(b["model"] == "nomic-embed-text" for b in fake.bodies)
    assert len(vectors) == 3 and all(len(v) == 8 and _unit(v) for v in vectors)
    assert embedder.name == "ollama:nomic-embed-text"


async def test_ollama_errors_are_provider_errors(fake: FakeEmbeddings, url: str) -> None:
    async with httpx.AsyncClient() as client:
        missing = OllamaEmbedder("nope", base_url=url, dimensions=8, client=client)
        with pytest.raises(ProviderBadRequest, match="not found"):
            await missing.embed(["x"])
        wrong_size = OllamaEmbedder(base_url=url, dimensions=16, client=client)
        with pytest.raises(ConfigurationError, match="8-dimensional"):
            await wrong_size.embed(["x"])
        fake.fail = (429, {"error": "busy"}, {"retry-after": "3"})
        with pytest.raises(ProviderRateLimited) as info:
            await OllamaEmbedder(base_url=url, dimensions=8, client=client).embed(["x"])
        assert info.value.retry_after == 3.0
    closed = OllamaEmbedder(base_url=f"http://127.0.0.1:{free_port()}", dimensions=8)
    try:
        with pytest.raises(ProviderConnectionError):
            await closed.embed(["x"])
    finally:
        await closed.aclose()


async def test_openai_embedder_orders_by_index_and_sends_key(
    fake: FakeEmbeddings, url: str
) -> None:
    embedder = OpenAIEmbedder(
        "text-embedding-3-small", dimensions=8, api_key="sk-test", base_url=f"{url}/v1"
    )
    try:
        vectors = await embedder.embed(["first", "second"])
        direct = [_vector("first", 8), _vector("second", 8)]
    finally:
        await embedder.aclose()
    assert fake.bodies[0] == {
        "model": "text-embedding-3-small",
        "input": ["first", "second"],
        "encoding_format": "float",
        "dimensions": 8,
    }
    assert fake.headers[0]["authorization"] == "Bearer sk-test"
    for got, raw in zip(vectors, direct, strict=True):
        norm = math.sqrt(sum(x * x for x in raw))
        assert got == pytest.approx([x / norm for x in raw])
    fake.fail = (401, {"error": {"message": "Incorrect API key"}}, {})
    failing = OpenAIEmbedder(dimensions=8, api_key="bad", base_url=f"{url}/v1")
    try:
        with pytest.raises(ProviderAuthError, match="Incorrect API key"):
            await failing.embed(["x"])
    finally:
        await failing.aclose()


async def test_openai_embedder_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        await OpenAIEmbedder().embed(["x"])
    with pytest.raises(ConfigurationError, match="dimensions"):
        OpenAIEmbedder("my-custom-model")


async def test_caching_embedder_embeds_each_text_once() -> None:
    calls: list[list[str]] = []

    class Counting(HashingEmbedder):
        async def embed(self, texts: Any) -> list[list[float]]:
            calls.append(list(texts))
            return await super().embed(texts)

    cached = CachingEmbedder(Counting(16), max_entries=2)
    first = await cached.embed(["a", "b", "a"])
    assert calls == [["a", "b"]] and first[0] == first[2]
    await cached.embed(["b", "c"])
    assert calls[-1] == ["c"]
    await cached.embed(["a"])  # evicted (least recently used)
    assert calls[-1] == ["a"]


def test_embedder_specs() -> None:
    assert isinstance(embedder_from_spec("hashing@64"), HashingEmbedder)
    assert embedder_from_spec("hashing@64").dimensions == 64
    assert isinstance(embedder_from_spec("minilm"), MiniLMEmbedder)
    ollama = embedder_from_spec("ollama:mxbai-embed-large@1024")
    assert isinstance(ollama, OllamaEmbedder) and ollama.dimensions == 1024
    openai = embedder_from_spec("openai:text-embedding-3-large")
    assert isinstance(openai, OpenAIEmbedder) and openai.dimensions == 3072
    for bad in ("word2vec", "ollama:x@many"):
        with pytest.raises(ConfigurationError):
            embedder_from_spec(bad)
