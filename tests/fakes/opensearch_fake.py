"""A strict fake OpenSearch server (plain ASGI) for exactly the calls the RAG index makes.

Served over real HTTP with ``serve`` so ``opensearch-py``'s async client (aiohttp) talks to
it as to a cluster. Endpoints:

- ``HEAD /{index}`` (exists), ``PUT /{index}`` (create), ``GET /{index}/_mapping``,
  ``DELETE /{index}``, ``POST /{index}/_refresh``, ``GET /`` (cluster info);
- ``POST /_bulk`` / ``POST /{index}/_bulk`` (NDJSON ``index`` and ``delete`` actions);
- ``POST /{index}/_search``, ``POST /{index}/_count``, ``POST /{index}/_delete_by_query``.

It implements what the index relies on, the way OpenSearch documents it:

- mappings: ``keyword``, ``text`` (``standard``/``english`` analyzers, approximated:
  lowercase word tokens; ``english`` also drops Lucene's English stop words and strips
  common suffixes), ``integer``, ``date``, ``object`` (``enabled: false``), and
  ``knn_vector`` (``dimension``; ``method`` ``hnsw`` on ``lucene``/``faiss``/``nmslib``
  with the spaces and parameters each engine accepts); ``dynamic: strict`` rejects unknown
  fields in documents (per-item ``strict_dynamic_mapping_exception`` in ``_bulk``);
- queries: ``bool`` (must/should/filter/must_not/minimum_should_match/boost), ``match``
  (BM25 with Lucene's formula, k1=1.2, b=0.75; ``operator``, ``boost``), ``term``,
  ``terms``, ``match_all``, and ``knn`` (exact search within its ``filter``; Lucene
  ``cosinesimil`` score ``(1 + cos) / 2``, l2 ``1 / (1 + d^2)``, innerproduct as documented);
- aggregations: ``terms`` (buckets by count desc, key asc) with sub-aggregations, and
  ``top_hits``.

Malformed bodies get OpenSearch-shaped 400 errors (``parsing_exception``,
``mapper_parsing_exception``, ``illegal_argument_exception``...): unknown keys, unknown
query or aggregation types, a ``knn`` vector of the wrong dimension, ``match`` on a
non-text field, a ``knn`` query on a field that is not a ``knn_vector``, and so on. It is
stricter than a cluster in one place: ``knn_vector`` fields require ``index.knn: true``.

``fake.requests`` records ``(method, path, params, body)`` of every request.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

ENGLISH_STOP = {
    "a",
    "an",
    "and",
    "are",
    "as",
    "at",
    "be",
    "but",
    "by",
    "for",
    "if",
    "in",
    "into",
    "is",
    "it",
    "no",
    "not",
    "of",
    "on",
    "or",
    "such",
    "that",
    "the",
    "their",
    "then",
    "there",
    "these",
    "they",
    "this",
    "to",
    "was",
    "will",
    "with",
}
SPACES = {
    "lucene": {"l2", "cosinesimil", "innerproduct"},
    "faiss": {"l2", "innerproduct", "cosinesimil", "hamming"},
    "nmslib": {"l2", "innerproduct", "cosinesimil", "l1", "linf"},
}
HNSW_PARAMETERS = {
    "lucene": {"ef_construction", "m"},
    "faiss": {"ef_construction", "m", "ef_search", "encoder"},
    "nmslib": {"ef_construction", "m"},
}
FIELD_PARAMS = {
    "keyword": {"type", "index", "ignore_above", "doc_values", "store"},
    "text": {"type", "analyzer", "search_analyzer", "index", "store"},
    "integer": {"type", "index", "doc_values", "store"},
    "long": {"type", "index", "doc_values", "store"},
    "float": {"type", "index", "doc_values", "store"},
    "date": {"type", "index", "doc_values", "format", "store"},
    "boolean": {"type", "index", "doc_values", "store"},
    "object": {"type", "enabled", "properties", "dynamic"},
    "knn_vector": {"type", "dimension", "method", "data_type", "mode", "compression_level"},
}
ANALYZERS = {"standard", "english", "simple", "whitespace", "keyword"}
SEARCH_KEYS = {"size", "from", "query", "_source", "aggs", "aggregations", "track_total_hits"}
K1, B = 1.2, 0.75


class OpenSearchError(Exception):
    def __init__(self, status: int, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.kind = kind
        self.reason = reason

    def body(self) -> dict[str, Any]:
        cause = {"type": self.kind, "reason": self.reason}
        return {"error": {"root_cause": [cause], **cause}, "status": self.status}


def bad(reason: str, kind: str = "parsing_exception") -> OpenSearchError:
    return OpenSearchError(400, kind, reason)


# --- analysis ---------------------------------------------------------------------


def _stem(word: str) -> str:
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "i"
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        if len(word) - len(suffix) >= 3 and word.endswith(suffix):
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


def analyze(text: str, analyzer: str) -> list[str]:
    if analyzer == "keyword":
        return [text]
    if analyzer == "whitespace":
        return text.split()
    words = re.findall(r"[\w']+", text.lower())
    if analyzer == "english":
        return [_stem(w) for w in words if w not in ENGLISH_STOP]
    return words


# --- index ------------------------------------------------------------------------


@dataclass
class FakeIndex:
    name: str
    settings: dict[str, Any]
    mappings: dict[str, Any]
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # insertion-ordered

    @property
    def properties(self) -> dict[str, Any]:
        return dict(self.mappings.get("properties", {}))

    def field_type(self, name: str) -> str | None:
        spec = self.properties.get(name)
        return spec.get("type", "object") if spec is not None else None

    def tokens(self, doc: dict[str, Any], name: str) -> list[str]:
        value = doc.get(name)
        if not isinstance(value, str):
            return []
        return analyze(value, self.properties[name].get("analyzer", "standard"))


def _validate_mapping(settings: dict[str, Any], mappings: dict[str, Any]) -> None:
    index_settings = settings.get("index", {})
    if not isinstance(index_settings, dict):
        raise bad("[index] settings must be an object", "settings_exception")
    for key in index_settings:
        if key not in {
            "knn",
            "knn.algo_param.ef_search",
            "number_of_shards",
            "number_of_replicas",
            "refresh_interval",
        }:
            raise OpenSearchError(
                400, "illegal_argument_exception", f"unknown setting [index.{key}]"
            )
    for key in mappings:
        if key not in {"dynamic", "properties", "_source"}:
            raise bad(
                f"Root mapping definition has unsupported parameters: [{key}]",
                "mapper_parsing_exception",
            )
    if mappings.get("dynamic", True) not in (True, False, "true", "false", "strict"):
        raise bad("dynamic must be true, false or strict", "mapper_parsing_exception")
    knn_enabled = index_settings.get("knn") in (True, "true")
    for name, spec in mappings.get("properties", {}).items():
        if not isinstance(spec, dict):
            raise bad(f"Expected map for property [{name}]", "mapper_parsing_exception")
        kind = spec.get("type", "object")
        allowed = FIELD_PARAMS.get(kind)
        if allowed is None:
            raise bad(
                f"No handler for type [{kind}] declared on field [{name}]",
                "mapper_parsing_exception",
            )
        unknown = set(spec) - allowed
        if unknown:
            raise bad(
                f"unknown parameter [{sorted(unknown)[0]}] on mapper [{name}] of type [{kind}]",
                "mapper_parsing_exception",
            )
        if kind == "text":
            for key in ("analyzer", "search_analyzer"):
                if key in spec and spec[key] not in ANALYZERS:
                    raise bad(
                        f"analyzer [{spec[key]}] has not been configured in mappings",
                        "mapper_parsing_exception",
                    )
        if kind == "knn_vector":
            if not knn_enabled:
                raise bad(
                    f"field [{name}]: knn_vector needs index.knn: true", "mapper_parsing_exception"
                )
            _validate_knn_field(name, spec)


def _validate_knn_field(name: str, spec: dict[str, Any]) -> None:
    dim = spec.get("dimension")
    if not isinstance(dim, int) or isinstance(dim, bool) or not 1 <= dim <= 16000:
        raise bad(
            f"Dimension value must be an integer between 1 and 16000 for [{name}]",
            "mapper_parsing_exception",
        )
    method = spec.get("method")
    if method is None:
        return
    if not isinstance(method, dict) or set(method) - {"name", "space_type", "engine", "parameters"}:
        raise bad(f"invalid method definition for [{name}]", "mapper_parsing_exception")
    if method.get("name") not in ("hnsw", "ivf"):
        raise bad(f"Invalid method name: {method.get('name')}", "mapper_parsing_exception")
    engine = method.get("engine", "faiss")
    if engine not in SPACES:
        raise bad(f"Invalid engine type: {engine}", "mapper_parsing_exception")
    space = method.get("space_type", "l2")
    if space not in SPACES[engine]:
        raise bad(
            f"{engine} engine does not support space type {space}", "mapper_parsing_exception"
        )
    params = method.get("parameters", {}) or {}
    if method["name"] == "hnsw":
        unknown = set(params) - HNSW_PARAMETERS[engine]
        if unknown:
            raise bad(
                f"Invalid parameter for hnsw on {engine}: {sorted(unknown)[0]}",
                "mapper_parsing_exception",
            )
    for key in ("ef_construction", "m"):
        if key in params and (not isinstance(params[key], int) or params[key] < 2):
            raise bad(f"{key} must be an integer >= 2", "mapper_parsing_exception")


def _validate_document(index: FakeIndex, doc: Any) -> None:
    if not isinstance(doc, dict):
        raise bad("document must be an object", "mapper_parsing_exception")
    strict = index.mappings.get("dynamic") == "strict"
    for name, value in doc.items():
        kind = index.field_type(name)
        if kind is None:
            if strict:
                raise bad(
                    f"mapping set to strict, dynamic introduction of [{name}] within [_doc] is "
                    "not allowed",
                    "strict_dynamic_mapping_exception",
                )
            continue
        if value is None:
            continue
        spec = index.properties[name]
        if kind in ("keyword", "text") and not isinstance(value, str):
            raise bad(
                f"failed to parse field [{name}] of type [{kind}]", "mapper_parsing_exception"
            )
        if kind in ("integer", "long") and (isinstance(value, bool) or not isinstance(value, int)):
            raise bad(
                f"failed to parse field [{name}] of type [{kind}]", "mapper_parsing_exception"
            )
        if kind == "object" and spec.get("enabled", True) and not isinstance(value, dict):
            raise bad(
                f"object mapping for [{name}] tried to parse a value", "mapper_parsing_exception"
            )
        if kind == "knn_vector":
            if not isinstance(value, list) or not all(
                isinstance(x, (int, float)) and not isinstance(x, bool) for x in value
            ):
                raise bad(
                    f"failed to parse field [{name}] of type [knn_vector]",
                    "mapper_parsing_exception",
                )
            if len(value) != spec["dimension"]:
                raise bad(
                    f"Vector dimension mismatch. Expected: {spec['dimension']}, Given: {len(value)}",
                    "mapper_parsing_exception",
                )


# --- queries ----------------------------------------------------------------------


def _single(query: Any, where: str) -> tuple[str, Any]:
    if not isinstance(query, dict) or len(query) != 1:
        raise bad(f"[{where}] query malformed, must be an object with exactly one key")
    ((kind, body),) = query.items()
    return kind, body


def _field_body(kind: str, body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise bad(f"[{kind}] query doesn't support multiple fields")
    ((name, value),) = body.items()
    return name, value


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a)) or 1.0
    nb = math.sqrt(sum(y * y for y in b)) or 1.0
    return dot / (na * nb)


class Evaluator:
    """Evaluates a query over every document: ``{doc_id: score}`` of the matches."""

    def __init__(self, index: FakeIndex) -> None:
        self.index = index

    def run(self, query: Any, ids: list[str] | None = None) -> dict[str, float]:
        ids = list(self.index.docs) if ids is None else ids
        kind, body = _single(query, "query")
        handler = getattr(self, f"_q_{kind}", None)
        if handler is None:
            raise bad(f"unknown query [{kind}]")
        return dict(handler(body, ids))

    def _q_match_all(self, body: Any, ids: list[str]) -> dict[str, float]:
        if not isinstance(body, dict) or set(body) - {"boost"}:
            raise bad("[match_all] unknown field")
        return dict.fromkeys(ids, float(body.get("boost", 1.0)))

    def _q_term(self, body: Any, ids: list[str]) -> dict[str, float]:
        name, value = _field_body("term", body)
        boost = 1.0
        if isinstance(value, dict):
            if set(value) - {"value", "boost"} or "value" not in value:
                raise bad("[term] query malformed: only value and boost are allowed")
            boost, value = float(value.get("boost", 1.0)), value["value"]
        if isinstance(value, (dict, list)):
            raise bad("[term] query does not support array or object values")
        return {i: boost for i in ids if self._field_equals(i, name, value)}

    def _q_terms(self, body: Any, ids: list[str]) -> dict[str, float]:
        body = dict(body) if isinstance(body, dict) else {}
        boost = float(body.pop("boost", 1.0))
        name, values = _field_body("terms", body)
        if not isinstance(values, list):
            raise bad("[terms] query requires an array of values")
        return {i: boost for i in ids if any(self._field_equals(i, name, v) for v in values)}

    def _field_equals(self, ident: str, name: str, value: Any) -> bool:
        stored = self.index.docs[ident].get(name)
        if self.index.field_type(name) == "text":
            return isinstance(stored, str) and str(value) in self.index.tokens(
                self.index.docs[ident], name
            )
        return stored == value or (isinstance(stored, list) and value in stored)

    def _q_match(self, body: Any, ids: list[str]) -> dict[str, float]:
        name, value = _field_body("match", body)
        options: dict[str, Any] = {"query": value} if not isinstance(value, dict) else dict(value)
        unknown = set(options) - {"query", "boost", "operator", "analyzer"}
        if unknown or "query" not in options:
            raise bad(f"[match] query does not support [{sorted(unknown or {'query'})[0]}]")
        if self.index.field_type(name) != "text":
            raise bad(f"[match] on [{name}]: field is not a text field", "query_shard_exception")
        operator = str(options.get("operator", "or")).lower()
        if operator not in ("or", "and"):
            raise bad(f"[match] unknown operator [{operator}]")
        analyzer = options.get("analyzer") or self.index.properties[name].get(
            "search_analyzer", self.index.properties[name].get("analyzer", "standard")
        )
        terms = analyze(str(options["query"]), analyzer)
        boost = float(options.get("boost", 1.0))
        all_ids = list(self.index.docs)
        lengths = {i: len(self.index.tokens(self.index.docs[i], name)) for i in all_ids}
        with_field = [i for i in all_ids if lengths[i]]
        n = len(with_field)
        avgdl = (sum(lengths[i] for i in with_field) / n) if n else 1.0
        doc_freq: dict[str, int] = {}
        token_cache = {i: self.index.tokens(self.index.docs[i], name) for i in ids}
        for term in set(terms):
            doc_freq[term] = sum(
                1 for i in with_field if term in self.index.tokens(self.index.docs[i], name)
            )
        out: dict[str, float] = {}
        for i in ids:
            tokens = token_cache[i]
            present = [t for t in terms if t in tokens]
            if not present or (operator == "and" and set(present) != set(terms)):
                continue
            score = 0.0
            for term in present:
                tf = tokens.count(term)
                idf = math.log(1 + (n - doc_freq[term] + 0.5) / (doc_freq[term] + 0.5))
                score += idf * tf / (tf + K1 * (1 - B + B * lengths[i] / avgdl))
            out[i] = score * boost
        return out

    def _q_bool(self, body: Any, ids: list[str]) -> dict[str, float]:
        if not isinstance(body, dict):
            raise bad("[bool] query malformed")
        unknown = set(body) - {
            "must",
            "should",
            "filter",
            "must_not",
            "minimum_should_match",
            "boost",
        }
        if unknown:
            raise bad(f"[bool] query does not support [{sorted(unknown)[0]}]")

        def clauses(key: str) -> list[Any]:
            value = body.get(key, [])
            return value if isinstance(value, list) else [value]

        candidates = list(ids)
        for clause in clauses("filter"):
            matched = self.run(clause, candidates)
            candidates = [i for i in candidates if i in matched]
        for clause in clauses("must_not"):
            matched = self.run(clause, candidates)
            candidates = [i for i in candidates if i not in matched]
        scores = dict.fromkeys(candidates, 0.0)
        for clause in clauses("must"):
            matched = self.run(clause, candidates)
            candidates = [i for i in candidates if i in matched]
            scores = {i: scores[i] + matched[i] for i in candidates}
        should = clauses("should")
        default_msm = 0 if (body.get("must") or body.get("filter")) else (1 if should else 0)
        msm = body.get("minimum_should_match", default_msm)
        try:
            msm = int(msm)
        except (TypeError, ValueError):
            raise bad(f"[bool] minimum_should_match [{msm}] is not supported here") from None
        hits = dict.fromkeys(candidates, 0)
        for clause in should:
            matched = self.run(clause, candidates)
            for i in candidates:
                if i in matched:
                    hits[i] += 1
                    scores[i] += matched[i]
        boost = float(body.get("boost", 1.0))
        return {i: scores[i] * boost for i in candidates if hits[i] >= msm}

    def _q_knn(self, body: Any, ids: list[str]) -> dict[str, float]:
        name, options = _field_body("knn", body)
        if not isinstance(options, dict):
            raise bad("[knn] field options must be an object")
        unknown = set(options) - {"vector", "k", "filter", "boost", "method_parameters"}
        if unknown:
            raise bad(f"[knn] unknown token [{sorted(unknown)[0]}] after [{name}]")
        spec = self.index.properties.get(name)
        if spec is None or spec.get("type") != "knn_vector":
            raise bad(f"Field '{name}' is not knn_vector type.", "query_shard_exception")
        vector, k = options.get("vector"), options.get("k")
        if not isinstance(vector, list) or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in vector
        ):
            raise bad("[knn] requires a numeric vector")
        if len(vector) != spec["dimension"]:
            raise bad(
                f"Query vector has invalid dimension: {len(vector)}. "
                f"Dimension should be: {spec['dimension']}",
                "illegal_argument_exception",
            )
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 10000:
            raise bad("[knn] requires k > 0 and <= 10000")
        pool = [i for i in ids if isinstance(self.index.docs[i].get(name), list)]
        if "filter" in options:
            matched = self.run(options["filter"], pool)
            pool = [i for i in pool if i in matched]
        method = spec.get("method") or {}
        space = method.get("space_type", "l2")
        engine = method.get("engine", "faiss")
        scored = {i: _knn_score(space, engine, vector, self.index.docs[i][name]) for i in pool}
        best = sorted(scored, key=lambda i: -scored[i])[:k]
        boost = float(options.get("boost", 1.0))
        return {i: scored[i] * boost for i in best}


def _knn_score(space: str, engine: str, query: list[float], vec: list[float]) -> float:
    if space == "cosinesimil":
        cos = _cosine(query, vec)
        return (1 + cos) / 2 if engine == "lucene" else 1 / (1 + (1 - cos))
    if space == "innerproduct":
        dot = sum(x * y for x, y in zip(query, vec, strict=True))
        return 1 / (1 - dot) if dot < 0 else dot + 1
    distance = sum((x - y) ** 2 for x, y in zip(query, vec, strict=True))
    return 1 / (1 + distance)


# --- aggregations -----------------------------------------------------------------


def _filter_source(source: dict[str, Any], spec: Any) -> dict[str, Any] | None:
    if spec is None or spec is True:
        return dict(source)
    if spec is False:
        return None
    includes: list[str] = []
    excludes: list[str] = []
    if isinstance(spec, str):
        includes = [spec]
    elif isinstance(spec, list):
        includes = spec
    elif isinstance(spec, dict):
        if set(spec) - {"includes", "excludes"}:
            raise bad("[_source] unknown key")
        includes, excludes = list(spec.get("includes", [])), list(spec.get("excludes", []))
    else:
        raise bad("[_source] must be a boolean, string, array or object")
    out = {k: v for k, v in source.items() if not includes or k in includes}
    return {k: v for k, v in out.items() if k not in excludes}


def _aggregate(
    index: FakeIndex, aggs: Any, ids: list[str], scores: dict[str, float]
) -> dict[str, Any]:
    if not isinstance(aggs, dict):
        raise bad("[aggs] must be an object")
    out: dict[str, Any] = {}
    for name, spec in aggs.items():
        if not isinstance(spec, dict):
            raise bad(f"aggregation [{name}] must be an object")
        spec = dict(spec)
        sub = spec.pop("aggs", spec.pop("aggregations", None))
        if len(spec) != 1:
            raise bad(f"Expected one aggregation type for [{name}], found {sorted(spec)}")
        ((kind, body),) = spec.items()
        if kind == "terms":
            out[name] = _terms(index, body, ids, scores, sub)
        elif kind == "top_hits":
            if sub:
                raise bad(
                    "Aggregator [top_hits] of type [top_hits] cannot accept sub-aggregations",
                    "aggregation_initialization_exception",
                )
            out[name] = _top_hits(index, body, ids, scores)
        else:
            raise bad(
                f"Unknown aggregation type [{kind}] did you mean [terms]?",
                "unknown_named_object_exception",
            )
    return out


def _terms(
    index: FakeIndex, body: Any, ids: list[str], scores: dict[str, float], sub: Any
) -> dict[str, Any]:
    if not isinstance(body, dict) or "field" not in body or set(body) - {"field", "size"}:
        raise bad("[terms] aggregation needs a field (and optional size)")
    name = body["field"]
    if index.field_type(name) != "keyword":
        raise bad(
            f"Text fields are not optimised for operations that require per-document field data "
            f"like aggregations: [{name}]",
            "illegal_argument_exception",
        )
    size = body.get("size", 10)
    groups: dict[Any, list[str]] = {}
    for i in ids:
        value = index.docs[i].get(name)
        if value is not None:
            groups.setdefault(value, []).append(i)
    ordered = sorted(groups.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))
    buckets = []
    for key, members in ordered[:size]:
        bucket: dict[str, Any] = {"key": key, "doc_count": len(members)}
        if sub:
            bucket.update(_aggregate(index, sub, members, scores))
        buckets.append(bucket)
    other = sum(len(m) for _, m in ordered[size:])
    return {"doc_count_error_upper_bound": 0, "sum_other_doc_count": other, "buckets": buckets}


def _top_hits(
    index: FakeIndex, body: Any, ids: list[str], scores: dict[str, float]
) -> dict[str, Any]:
    if not isinstance(body, dict) or set(body) - {"size", "_source"}:
        raise bad("[top_hits] supports size and _source here")
    ranked = sorted(ids, key=lambda i: -scores.get(i, 0.0))[: body.get("size", 3)]
    return {
        "hits": {
            "total": {"value": len(ids), "relation": "eq"},
            "max_score": max((scores.get(i, 0.0) for i in ids), default=None),
            "hits": [
                {
                    "_index": index.name,
                    "_id": i,
                    "_score": scores.get(i, 0.0),
                    "_source": _filter_source(index.docs[i], body.get("_source")),
                }
                for i in ranked
            ],
        }
    }


# --- server -----------------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    body: Any


class FakeOpenSearch:
    def __init__(self, *, version: str = "2.17.0") -> None:
        self.version = version
        self.indices: dict[str, FakeIndex] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()

    def bodies(self, path_suffix: str) -> list[Any]:
        """Recorded bodies of requests whose path ends with *path_suffix*."""
        return [r.body for r in self.requests if r.path.endswith(path_suffix)]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        method, path = scope["method"], scope["path"]
        params = dict(parse_qsl(scope.get("query_string", b"").decode()))
        raw = await _read_body(receive)
        try:
            if path.rstrip("/").endswith("_bulk"):
                body: Any = _ndjson(raw)
            else:
                body = json.loads(raw) if raw.strip() else None
        except ValueError:
            await _json(
                send, 400, bad("request body is not valid JSON", "json_parse_exception").body()
            )
            return
        with self._lock:
            self.requests.append(Recorded(method, path, params, body))
            try:
                status, payload = self._route(method, path, params, body)
            except OpenSearchError as exc:
                status, payload = exc.status, exc.body()
        if method == "HEAD":
            await send(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [(b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await _json(send, status, payload)

    def _route(self, method: str, path: str, params: dict[str, str], body: Any) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if not parts and method in ("GET", "HEAD"):
            return 200, {
                "name": "fake",
                "version": {"distribution": "opensearch", "number": self.version},
            }
        if parts == ["_bulk"] or (len(parts) == 2 and parts[1] == "_bulk"):
            if method not in ("POST", "PUT"):
                raise _no_handler(method, path)
            return 200, self._bulk(parts[0] if len(parts) == 2 else None, body, params)
        if len(parts) == 1:
            name = parts[0]
            if method == "HEAD":
                return (200 if name in self.indices else 404), None
            if method == "PUT":
                return 200, self._create(name, body or {})
            if method == "DELETE":
                if name not in self.indices and params.get("ignore_unavailable") == "true":
                    return 200, {"acknowledged": True}
                self._index(name)
                del self.indices[name]
                return 200, {"acknowledged": True}
            raise _no_handler(method, path)
        if len(parts) == 2 and method in ("GET", "POST"):
            index = self._index(parts[0])
            action = parts[1]
            if action == "_mapping" and method == "GET":
                return 200, {index.name: {"mappings": index.mappings}}
            if action == "_refresh" and method == "POST":
                return 200, {"_shards": {"total": 1, "successful": 1, "failed": 0}}
            if action == "_search":
                return 200, self._search(index, body or {})
            if action == "_count":
                return 200, self._count(index, body or {})
            if action == "_delete_by_query" and method == "POST":
                return 200, self._delete_by_query(index, body, params)
        raise _no_handler(method, path)

    def _index(self, name: str) -> FakeIndex:
        index = self.indices.get(name)
        if index is None:
            raise OpenSearchError(404, "index_not_found_exception", f"no such index [{name}]")
        return index

    def _create(self, name: str, body: Any) -> dict[str, Any]:
        if name in self.indices:
            raise OpenSearchError(
                400, "resource_already_exists_exception", f"index [{name}/fakeuuid] already exists"
            )
        if not re.fullmatch(r"[a-z0-9][a-z0-9_\-.]*", name):
            raise OpenSearchError(
                400, "invalid_index_name_exception", f"Invalid index name [{name}]"
            )
        if not isinstance(body, dict) or set(body) - {"settings", "mappings", "aliases"}:
            raise bad("unknown key in create index body", "illegal_argument_exception")
        settings, mappings = body.get("settings", {}), body.get("mappings", {})
        if not isinstance(settings, dict) or not isinstance(mappings, dict):
            raise bad("settings and mappings must be objects")
        _validate_mapping(settings, mappings)
        self.indices[name] = FakeIndex(name, settings, mappings)
        return {"acknowledged": True, "shards_acknowledged": True, "index": name}

    def _bulk(
        self, default_index: str | None, lines: list[Any], params: dict[str, str]
    ) -> dict[str, Any]:
        if params.get("refresh", "false") not in ("true", "false", "wait_for", ""):
            raise bad(f"invalid refresh value [{params['refresh']}]", "illegal_argument_exception")
        items: list[dict[str, Any]] = []
        i = 0
        while i < len(lines):
            action = lines[i]
            if not isinstance(action, dict) or len(action) != 1:
                raise bad(
                    "Malformed action/metadata line, expected a single action",
                    "illegal_argument_exception",
                )
            ((kind, meta),) = action.items()
            if kind not in ("index", "create", "delete", "update") or not isinstance(meta, dict):
                raise bad(
                    f"Malformed action/metadata line [{i + 1}], unknown action [{kind}]",
                    "illegal_argument_exception",
                )
            unknown = set(meta) - {"_index", "_id", "routing"}
            if unknown:
                raise bad(
                    f"Action/metadata line [{i + 1}] contains an unknown parameter [{sorted(unknown)[0]}]",
                    "illegal_argument_exception",
                )
            name = meta.get("_index", default_index)
            ident = meta.get("_id")
            if kind == "delete":
                i += 1
                index = self.indices.get(name or "")
                found = index is not None and ident in index.docs
                if found:
                    del index.docs[ident]
                items.append(
                    {
                        "delete": {
                            "_index": name,
                            "_id": ident,
                            "status": 200 if found else 404,
                            "result": "deleted" if found else "not_found",
                        }
                    }
                )
                continue
            if i + 1 >= len(lines):
                raise bad(
                    "The bulk request must be terminated by a newline [\\n]",
                    "illegal_argument_exception",
                )
            doc = lines[i + 1]
            i += 2
            if kind == "update":
                items.append(
                    {
                        kind: {
                            "_index": name,
                            "_id": ident,
                            "status": 400,
                            "error": {
                                "type": "illegal_argument_exception",
                                "reason": "update is not supported by the fake",
                            },
                        }
                    }
                )
                continue
            index = self.indices.get(name or "")
            if index is None:
                items.append(
                    {
                        kind: {
                            "_index": name,
                            "_id": ident,
                            "status": 404,
                            "error": {
                                "type": "index_not_found_exception",
                                "reason": f"no such index [{name}]",
                            },
                        }
                    }
                )
                continue
            try:
                _validate_document(index, doc)
            except OpenSearchError as exc:
                items.append(
                    {
                        kind: {
                            "_index": name,
                            "_id": ident,
                            "status": 400,
                            "error": {"type": exc.kind, "reason": exc.reason},
                        }
                    }
                )
                continue
            if ident is None:
                ident = f"auto{len(index.docs)}-{i}"
            if kind == "create" and ident in index.docs:
                items.append(
                    {
                        kind: {
                            "_index": name,
                            "_id": ident,
                            "status": 409,
                            "error": {
                                "type": "version_conflict_engine_exception",
                                "reason": "document already exists",
                            },
                        }
                    }
                )
                continue
            created = ident not in index.docs
            index.docs[ident] = doc
            items.append(
                {
                    kind: {
                        "_index": name,
                        "_id": ident,
                        "status": 201 if created else 200,
                        "result": "created" if created else "updated",
                    }
                }
            )
        return {
            "took": 1,
            "errors": any("error" in next(iter(it.values())) for it in items),
            "items": items,
        }

    def _search(self, index: FakeIndex, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise bad("search body must be an object")
        unknown = set(body) - SEARCH_KEYS
        if unknown:
            raise bad(f"Unknown key for a START_OBJECT in [{sorted(unknown)[0]}].")
        size = body.get("size", 10)
        start = body.get("from", 0)
        for key, value in (("size", size), ("from", start)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise bad(f"[{key}] must be a non-negative integer", "illegal_argument_exception")
        evaluator = Evaluator(index)
        scores = evaluator.run(body.get("query", {"match_all": {}}))
        order = list(index.docs)
        ranked = sorted(scores, key=lambda i: (-scores[i], order.index(i)))
        hits = [
            {
                "_index": index.name,
                "_id": i,
                "_score": scores[i],
                "_source": _filter_source(index.docs[i], body.get("_source")),
            }
            for i in ranked[start : start + size]
        ]
        for hit in hits:
            if hit["_source"] is None:
                del hit["_source"]
        result: dict[str, Any] = {
            "took": 1,
            "timed_out": False,
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
            "hits": {
                "total": {"value": len(ranked), "relation": "eq"},
                "max_score": scores[ranked[0]] if ranked else None,
                "hits": hits,
            },
        }
        aggs = body.get("aggs", body.get("aggregations"))
        if aggs is not None:
            result["aggregations"] = _aggregate(index, aggs, ranked, scores)
        return result

    def _count(self, index: FakeIndex, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or set(body) - {"query"}:
            raise bad(
                "request does not support [" + ",".join(sorted(set(body or {}) - {"query"})) + "]"
            )
        matched = Evaluator(index).run(body.get("query", {"match_all": {}}))
        return {
            "count": len(matched),
            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
        }

    def _delete_by_query(
        self, index: FakeIndex, body: Any, params: dict[str, str]
    ) -> dict[str, Any]:
        if not isinstance(body, dict) or "query" not in body or set(body) - {"query", "max_docs"}:
            raise bad(
                "_delete_by_query requires a body with a query",
                "action_request_validation_exception",
            )
        if params.get("conflicts", "abort") not in ("abort", "proceed"):
            raise bad('conflicts may only be "proceed" or "abort"', "illegal_argument_exception")
        matched = Evaluator(index).run(body["query"])
        for ident in matched:
            del index.docs[ident]
        return {
            "took": 1,
            "timed_out": False,
            "total": len(matched),
            "deleted": len(matched),
            "batches": 1 if matched else 0,
            "version_conflicts": 0,
            "noops": 0,
            "retries": {"bulk": 0, "search": 0},
            "failures": [],
        }


def _no_handler(method: str, path: str) -> OpenSearchError:
    return OpenSearchError(
        400,
        "illegal_argument_exception",
        f"no handler found for uri [{path}] and method [{method}]",
    )


def _ndjson(raw: bytes) -> list[Any]:
    text = raw.decode()
    if text and not text.endswith("\n"):
        raise ValueError("bulk body must end with a newline")
    return [json.loads(line) for line in text.split("\n") if line.strip()]


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _json(send: Send, status: int, payload: Any) -> None:
    data = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
