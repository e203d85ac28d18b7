from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from warroom.deps import Admin, BeforeId, Context, Offset
from warroom.incidents.service import parse_ref
from warroom.jobs import service
from warroom.jobs.models import JobStatus
from warroom.jobs.schemas import JobPage, JobRead

router = APIRouter(prefix="/api/v1/jobs", tags=["jobs"])


@router.get("", response_model=JobPage)
def list_jobs(
    context: Context,
    _: Admin,
    status_: Annotated[JobStatus | None, Query(alias="status")] = None,
    kind: Annotated[str | None, Query(max_length=100)] = None,
    incident: Annotated[str | None, Query(description="INC-n", max_length=20)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Offset = 0,
    before_id: BeforeId = None,
) -> JobPage:
    """The durable job queue, newest first (admin: payloads may hold recipients). ``total``: the jobs the
    filters and ``before_id`` select."""
    incident_id = parse_ref(incident) if incident else None
    with context.db.read() as session:
        rows = service.list_jobs(
            session,
            status=status_,
            kind=kind,
            incident_id=incident_id,
            limit=limit,
            offset=offset,
            before_id=before_id,
        )
        total = service.count_jobs(
            session, status=status_, kind=kind, incident_id=incident_id, before_id=before_id
        )
        return JobPage(
            items=[JobRead.model_validate(row) for row in rows], total=total, limit=limit, offset=offset
        )
