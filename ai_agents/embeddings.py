"""Embedders: text -> unit vectors. One embedder is shared by vector memory and RAG.

:class:`HashingEmbedder` needs nothing installed (feature hashing of words and word
pairs); it is the fallback when no model is configured. Real semantic embedders
(MiniLM via sentence-transformers, Ollama, OpenAI) implement the same Protocol.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

_WORD = re.compile(r"\w+", re.UNICODE)


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimensions: int

    async def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def normalize(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two unit vectors (a dot product)."""
    return sum(x * y for x, y in zip(a, b, strict=False))


class HashingEmbedder:
    """Bag of words and word pairs hashed into a fixed-size vector (lexical similarity)."""

    name = "hashing-v1"

    def __init__(self, dimensions: int = 512) -> None:
        self.dimensions = dimensions

    def _vector(self, text: str) -> list[float]:
        words = [w.lower() for w in _WORD.findall(text)]
        features = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
        vec = [0.0] * self.dimensions
        for feature in features:
            digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dimensions
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        return normalize(vec)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._vector(t) for t in texts]
