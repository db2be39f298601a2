"""One round trip to save a turn: ``ai_agents_append`` does the whole append server-side.

The run's completion (fenced on its owner), its last steps, the thread's seq range and
counters, the user's totals, the size limits, the messages and the memory state are one
statement from the client's side: no transaction stays open between round trips (so no
connection is ever idle in a transaction), and a busy event loop cannot stretch one.
Limit violations raise SQLSTATE ``AAL01`` (thread), ``AAL02`` (user), ``AAL03`` (tenant)
with ``current,attempted`` in DETAIL; a run no longer owned raises ``AAR01``; an invisible
thread ``AAN01``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

FUNCTION = r"""
CREATE OR REPLACE FUNCTION ai_agents_append(
    p_thread uuid, p_tenant text, p_run uuid, p_idempotency_key text,
    p_ids uuid[], p_roles text[], p_contents text[], p_tool_calls jsonb[],
    p_tool_call_ids text[], p_tool_names text[], p_token_counts int[], p_sizes int[],
    p_providers text[], p_models text[], p_input_tokens int[], p_output_tokens int[],
    p_costs float8[], p_metadata jsonb[],
    p_thread_limit bigint, p_user_limit bigint, p_tenant_limit bigint,
    p_memory_state jsonb,
    p_run_owner text, p_run_status text, p_run_provider text, p_run_model text,
    p_run_input bigint, p_run_output bigint, p_run_cost float8, p_run_incomplete jsonb,
    p_run_steps jsonb
) RETURNS TABLE (out_id uuid, out_seq bigint, out_created_at timestamptz, out_waiters boolean)
LANGUAGE plpgsql AS $$
DECLARE
    n int := coalesce(cardinality(p_ids), 0);
    added bigint := coalesce((SELECT sum(s) FROM unnest(p_sizes) AS s), 0);
    tokens_in bigint := coalesce((SELECT sum(x) FROM unnest(p_input_tokens) AS x), 0);
    tokens_out bigint := coalesce((SELECT sum(x) FROM unnest(p_output_tokens) AS x), 0);
    spent float8 := coalesce((SELECT sum(x) FROM unnest(p_costs) AS x), 0);
    v_last bigint;
    v_total bigint;
    v_tenant text;
    v_user text;
    v_user_total bigint;
    v_sum bigint;
    v_waiters boolean := false;
BEGIN
    IF p_run_owner IS NOT NULL THEN
        UPDATE runs AS r SET status = p_run_status, completed_at = now(), owner = NULL,
            lease_expires_at = NULL, required_action = NULL, provider = p_run_provider,
            model = p_run_model, input_tokens = r.input_tokens + p_run_input,
            output_tokens = r.output_tokens + p_run_output, cost = r.cost + p_run_cost,
            incomplete_details = p_run_incomplete
        WHERE r.id = p_run AND r.owner = p_run_owner AND r.status = 'in_progress';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'run % was cancelled or expired before its turn was saved; '
                'nothing of it was saved', p_run USING ERRCODE = 'AAR01';
        END IF;
        INSERT INTO run_steps AS s (run_id, tenant_id, thread_id, seq, type, status, details,
            provider, model, input_tokens, output_tokens, cost, completed_at)
        SELECT p_run, r.tenant_id, r.thread_id, x.seq, x.type, x.status, x.details,
            x.provider, x.model, x.input_tokens, x.output_tokens, x.cost, now()
        FROM runs AS r, jsonb_to_recordset(coalesce(p_run_steps, '[]'::jsonb)) AS x(
            seq int, type text, status text, details jsonb, provider text, model text,
            input_tokens int, output_tokens int, cost float8)
        WHERE r.id = p_run
        ON CONFLICT (run_id, seq) DO UPDATE SET status = excluded.status,
            details = excluded.details, completed_at = excluded.completed_at;
        v_waiters := EXISTS (SELECT 1 FROM runs AS w
            WHERE w.thread_id = p_thread AND w.status = 'queued');
    END IF;

    -- Allocates the seq range and locks the thread row: writers of a thread serialize here.
    UPDATE threads AS t SET last_seq = t.last_seq + n, message_count = t.message_count + n,
        total_bytes = t.total_bytes + added, input_tokens = t.input_tokens + tokens_in,
        output_tokens = t.output_tokens + tokens_out, cost = t.cost + spent,
        last_used_at = now(),
        memory_state = coalesce(p_memory_state, t.memory_state)
    WHERE t.id = p_thread AND (p_tenant IS NULL OR t.tenant_id = p_tenant)
    RETURNING t.last_seq, t.total_bytes, t.tenant_id, t.user_id
    INTO v_last, v_total, v_tenant, v_user;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'thread % not found', p_thread USING ERRCODE = 'AAN01';
    END IF;
    IF v_total > p_thread_limit THEN
        RAISE EXCEPTION 'thread size limit exceeded' USING ERRCODE = 'AAL01',
            DETAIL = format('%s,%s', v_total - added, added);
    END IF;

    INSERT INTO user_usage AS u (tenant_id, user_id, total_bytes, input_tokens,
        output_tokens, cost)
    VALUES (v_tenant, coalesce(v_user, ''), added, tokens_in, tokens_out, spent)
    ON CONFLICT (tenant_id, user_id) DO UPDATE SET
        total_bytes = u.total_bytes + excluded.total_bytes,
        input_tokens = u.input_tokens + excluded.input_tokens,
        output_tokens = u.output_tokens + excluded.output_tokens,
        cost = u.cost + excluded.cost
    RETURNING u.total_bytes INTO v_user_total;
    IF v_user IS NOT NULL AND v_user_total > p_user_limit THEN
        RAISE EXCEPTION 'user size limit exceeded' USING ERRCODE = 'AAL02',
            DETAIL = format('%s,%s', v_user_total - added, added);
    END IF;

    IF p_tenant_limit IS NOT NULL AND added > 0 THEN
        -- Tenants with a quota serialize their writes on the tenant row (exact total).
        PERFORM 1 FROM tenants AS tn WHERE tn.id = v_tenant FOR UPDATE;
        SELECT coalesce(sum(uu.total_bytes), 0) INTO v_sum
        FROM user_usage AS uu WHERE uu.tenant_id = v_tenant;
        IF v_sum > p_tenant_limit THEN
            RAISE EXCEPTION 'tenant size limit exceeded' USING ERRCODE = 'AAL03',
                DETAIL = format('%s,%s', v_sum - added, added);
        END IF;
    END IF;

    RETURN QUERY
    INSERT INTO messages AS m (thread_id, run_id, id, seq, role, content, tool_calls,
        tool_call_id, tool_name, token_count, byte_size, provider, model, input_tokens,
        output_tokens, cost, idempotency_key, metadata)
    SELECT p_thread, p_run, b.id, v_last - n + b.ord, b.role, b.content, b.tool_calls,
        b.tool_call_id, b.tool_name, b.token_count, b.size, b.provider, b.model,
        b.input_tokens, b.output_tokens, b.cost,
        CASE WHEN b.ord = 1 THEN p_idempotency_key END, b.metadata
    FROM unnest(p_ids, p_roles, p_contents, p_tool_calls, p_tool_call_ids, p_tool_names,
        p_token_counts, p_sizes, p_providers, p_models, p_input_tokens, p_output_tokens,
        p_costs, p_metadata) WITH ORDINALITY AS b(id, role, content, tool_calls,
        tool_call_id, tool_name, token_count, size, provider, model, input_tokens,
        output_tokens, cost, metadata, ord)
    RETURNING m.id, m.seq, m.created_at, v_waiters;
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)


def downgrade() -> None:
    op.execute("DROP FUNCTION IF EXISTS ai_agents_append")
