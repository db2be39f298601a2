"""``/jobs``: poll and cancel background runs."""

from __future__ import annotations

from uuid import UUID

from litestar import get, post

from ai_agents.api.auth import Principal
from ai_agents.api.schemas import JobOut, job_out

TAGS = ["jobs"]


@get("/jobs/{job_id:uuid}", tags=TAGS, summary="Get a background job")
async def get_job(job_id: UUID, principal: Principal) -> JobOut:
    """Status (queued, running, succeeded, failed, cancelled), attempts and, when finished,
    the run (``result``) or why it failed (``error``). Another tenant's job is a 404."""
    return job_out(await principal.store.get_job(job_id))


@post("/jobs/{job_id:uuid}/cancel", tags=TAGS, summary="Cancel a background job", status_code=200)
async def cancel_job(job_id: UUID, principal: Principal) -> JobOut:
    """A queued job is cancelled at once; a running one gets ``cancel_requested`` and stops
    at its next safe point (nothing of its turn is saved); a finished one is unchanged."""
    return job_out(await principal.store.cancel_job(job_id))


HANDLERS = [get_job, cancel_job]
