"""The pgvector SQL the document index generates (the server-side behaviour is covered by
tests/integration/test_rag_pgvector.py)."""

from __future__ import annotations

import pytest

from ai_agents.rag.pgvector import (
    VectorState,
    cast_type,
    create_index_sql,
    indexed,
    search_sql,
)


def test_each_dimension_gets_a_partial_index_of_its_own_type() -> None:
    assert cast_type(384) == "vector(384)"
    assert cast_type(2000) == "vector(2000)"
    assert cast_type(3072) == "halfvec(3072)"  # over the 2,000-dimension HNSW limit
    small = create_index_sql(384)
    assert "USING hnsw ((embedding_vector::vector(384)) vector_cosine_ops)" in small
    assert small.endswith("WHERE vector_dims(embedding_vector) = 384")
    assert "halfvec_cosine_ops" in create_index_sql(3072)
    assert indexed(4000) and not indexed(4001)
    for bad in (0, -3, 16001):
        with pytest.raises(ValueError, match="dimensions"):
            cast_type(bad)


def test_the_search_repeats_the_index_expression_and_predicate() -> None:
    statement = search_sql(384, columns="c.id", entity=True)
    order = "ORDER BY (c.embedding_vector::vector(384)) <=> CAST(CAST(:vector AS real[])"
    assert order in statement
    assert "AND vector_dims(c.embedding_vector) = 384" in statement
    # The scope count, both nearest branches, both full-text branches; the final join
    # names the tenant only. A large scope's full text filters the tenant row by row
    # (no bitmap of the whole scope ANDed with the text matches).
    assert statement.count("c.entity_id = :entity") == 5
    assert statement.count("c.tenant_id = :tenant") == 5
    assert statement.count("c.tenant_id || '' = :tenant") == 1
    assert "WHERE (SELECT n FROM scope) >= :exact_below" in statement
    assert "WHERE (SELECT n FROM scope) < :exact_below" in statement
    assert "c.entity_id" not in search_sql(384, columns="c.id", entity=False)


def test_the_state_says_which_path_is_used() -> None:
    on = VectorState(available="0.8.6", installed="0.8.6", active=True, indexed_dimensions=(384,))
    assert on.describe() == "pgvector 0.8.6: HNSW (cosine) indexes for dimensions 384"
    could = VectorState(available="0.8.6", installed=None, active=False)
    assert "is available" in could.describe() and "numpy" in could.describe()
    none = VectorState(available=None, installed=None, active=False)
    assert none.describe() == "numpy over REAL[] (the server has no pgvector extension)"
