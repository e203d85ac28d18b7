"""An incident's statuses, the moves between them, and the kinds of timeline entry.

Plain enums, apart from the tables, so that the API client and the CLI use them without SQLAlchemy."""

from __future__ import annotations

import enum


class IncidentStatus(enum.StrEnum):
    investigating = "investigating"
    identified = "identified"
    monitoring = "monitoring"
    resolved = "resolved"
    postmortem = "postmortem"
    closed = "closed"

    @property
    def is_open(self) -> bool:
        return self in OPEN_STATUSES


OPEN_STATUSES = frozenset(
    {IncidentStatus.investigating, IncidentStatus.identified, IncidentStatus.monitoring}
)


# Allowed moves. Going back (monitoring -> investigating) is normal when a fix does not hold;
# resolved -> investigating is a reopen and is recorded as such.
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.investigating: frozenset(
        {IncidentStatus.identified, IncidentStatus.monitoring, IncidentStatus.resolved}
    ),
    IncidentStatus.identified: frozenset(
        {IncidentStatus.investigating, IncidentStatus.monitoring, IncidentStatus.resolved}
    ),
    IncidentStatus.monitoring: frozenset(
        {IncidentStatus.investigating, IncidentStatus.identified, IncidentStatus.resolved}
    ),
    IncidentStatus.resolved: frozenset(
        {IncidentStatus.investigating, IncidentStatus.postmortem, IncidentStatus.closed}
    ),
    IncidentStatus.postmortem: frozenset({IncidentStatus.closed}),
    IncidentStatus.closed: frozenset(),
}


class TimelineKind(enum.StrEnum):
    created = "created"
    status_change = "status_change"
    severity_change = "severity_change"
    commander_change = "commander_change"
    acknowledged = "acknowledged"
    responder_joined = "responder_joined"
    responder_left = "responder_left"
    field_change = "field_change"
    assessment = "assessment"
    communication = "communication"
    action = "action"
    note = "note"
    alert = "alert"
    page = "page"
    automation = "automation"
    reopened = "reopened"
