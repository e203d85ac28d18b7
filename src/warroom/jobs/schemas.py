from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from warroom.jobs.enums import JobStatus
from warroom.paging import Page


class JobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    payload: dict[str, Any]
    run_at: datetime
    status: JobStatus
    attempts: int
    max_attempts: int
    last_error: str | None
    lease_owner: str | None
    lease_expires_at: datetime | None
    idempotency_key: str | None
    result: dict[str, Any] | None
    incident_id: int | None
    peer: str | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class JobPage(Page[JobRead]):
    """Jobs newest first (by id)."""
