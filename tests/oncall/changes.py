"""Changing an incident by hand in the paging tests, as the API's PATCH would (in one transaction)."""

from __future__ import annotations

from typing import Any

from warroom.context import AppContext
from warroom.incidents import service as incident_service
from warroom.incidents.schemas import IncidentUpdate


def change(context: AppContext, incident_id: int, *, performer: str = "carol", **fields: Any) -> None:
    """Change an incident by hand, as ``performer`` (carol unless said): its severity down or up (a raise
    pages, a lowering follows), its status, with a note."""
    with context.db.write() as session:
        incident_service.update_incident(
            session, org=context.org, ref=incident_id, data=IncidentUpdate(**fields), performer=performer
        )
