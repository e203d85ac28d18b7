"""Incident events that start or stop paging, and a page that became a dead letter. Each only writes rows
in the event's transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.context import context_of
from warroom.db import utcnow
from warroom.events import DomainEvent, subscribe
from warroom.incidents import service as incident_service
from warroom.notify.service import DEAD_EVENT
from warroom.oncall import paging, service
from warroom.oncall.models import EscalationState, Page
from warroom.orgconfig import OrgConfig


def _org(session: Session) -> OrgConfig | None:
    try:
        return context_of(session).org
    except RuntimeError:  # a session opened outside an app context: let the worker decide
        return None


@subscribe("incident.created")
def page_new_incident(session: Session, event: DomainEvent) -> None:
    if event.incident_id is None:
        return
    org = _org(session)
    severity = str(event.data.get("severity", ""))
    if org is not None and service.paging_mode(org, severity) == "none":
        # Nothing to run later: note it now, in the same transaction, and enqueue nothing.
        incident = incident_service.get_incident(session, event.incident_id, for_update=True)
        paging.note_nobody_paged(session, org, incident, utcnow())
        return
    paging.request_paging(
        session, incident_id=event.incident_id, trigger="created", at=utcnow(), severity=severity or None
    )


@subscribe("incident.severity_changed")
def page_raised_severity(session: Session, event: DomainEvent) -> None:
    if event.incident_id is None:
        return
    if event.data.get("direction") == "raised":
        paging.request_paging(
            session,
            incident_id=event.incident_id,
            trigger="severity_raised",
            at=utcnow(),
            raised_by=event.performer,
            raised_to=str(event.data.get("to") or "") or None,
        )
        return
    # Lowered to a level that pages nobody (a false alarm, a P1 that turned out a P3): the escalation stops,
    # or the next steps would still wake people for a ticket.
    org = _org(session)
    lowered_to = str(event.data.get("to", ""))
    if org is not None and service.paging_mode(org, lowered_to) == "none":
        paging.stop_escalations(
            session, incident_id=event.incident_id, reason=EscalationState.silent, performer=event.performer
        )
    elif org is not None:
        paging.follow_lowered_severity(session, org, incident_id=event.incident_id, performer=event.performer)


@subscribe("incident.page_requested")
def page_requested_policy(session: Session, event: DomainEvent) -> None:
    """A policy to page beside the others: a rule's ``page`` (published by alert automation), which is not
    sent if the incident is acknowledged before the worker gets to it, or a person's request, which is; or a
    person asked for by name (``{"person": …}``)."""
    # A person's request names them (``paging.request_page_by_person``); a rule's does not.
    requested_by = event.data.get("requested_by")
    note = event.data.get("note")
    person = event.data.get("person")
    if event.incident_id is not None and isinstance(person, str) and person:
        paging.request_person_page(
            session,
            incident_id=event.incident_id,
            person=person,
            requested_by=str(requested_by or event.performer),
            note=str(note) if note else None,
            at=utcnow(),
        )
        return
    policy = event.data.get("policy")
    if event.incident_id is None or not isinstance(policy, str) or not policy:
        return
    rule = event.data.get("rule")
    merged_from: int | None = None
    merged = event.data.get("merged")
    if not requested_by and not rule and isinstance(merged, int):
        # A policy a merge carried over (``automation.merge_into``) keeps the rule that started it there.
        merged_from, rule = merged, paging.rule_of_run(session, merged, policy)
    org = _org(session)
    known = next((p for p in org.escalation_policies if p.name == policy), None) if org is not None else None
    paging.request_paging(
        session,
        incident_id=event.incident_id,
        trigger=paging.REQUESTED_BY_PERSON if requested_by else paging.REQUESTED_BY_AUTOMATION,
        policy=policy,
        at=utcnow(),
        requested_by=str(requested_by) if requested_by else None,
        note=str(note) if note else None,
        rule=str(rule) if rule else None,
        fingerprint=known.fingerprint if known is not None else None,
        merged_from=merged_from,
    )


@subscribe("incident.acknowledged")
def stop_on_acknowledge(session: Session, event: DomainEvent) -> None:
    if event.incident_id is not None:
        paging.stop_escalations(
            session,
            incident_id=event.incident_id,
            reason=EscalationState.acknowledged,
            performer=event.performer,
        )


@subscribe("incident.monitoring")
def hold_in_monitoring(session: Session, event: DomainEvent) -> None:
    """Monitoring means the fix is in place (all its alerts resolved, or a person says so): its escalations
    are held, and go on if it goes back to investigating (``resume_when_back``)."""
    if event.incident_id is not None:
        paging.stop_escalations(
            session,
            incident_id=event.incident_id,
            reason=EscalationState.monitoring,
            performer=event.performer,
        )


@subscribe("incident.status_changed")
def resume_when_back(session: Session, event: DomainEvent) -> None:
    """Out of monitoring, still open (an alert fired again, or a person moved it): the held escalations go
    on. A resolve stops them instead (``stop_on_resolve``)."""
    if event.incident_id is None or event.data.get("from") != "monitoring":
        return
    if event.data.get("to") in ("investigating", "identified"):
        paging.request_resume(session, incident_id=event.incident_id, performer=event.performer, at=utcnow())


@subscribe("incident.resolved", "incident.closed", "incident.postmortem")
def stop_on_resolve(session: Session, event: DomainEvent) -> None:
    if event.incident_id is not None:
        paging.stop_escalations(
            session, incident_id=event.incident_id, reason=EscalationState.resolved, performer=event.performer
        )


@subscribe(DEAD_EVENT)
def hand_on_when_a_page_is_dead(session: Session, event: DomainEvent) -> None:
    """A page's delivery became a dead letter: if it was its step's last hope, the step hands on now rather
    than at its deadline (``paging.hand_over_unreachable_step``, run as a job of its own)."""
    delivery_id = event.data.get("delivery_id")
    if event.incident_id is None or not isinstance(delivery_id, int):
        return
    # Several pages may ride on one delivery: a duplicate (``PageStatus.duplicate``) shares the page's it
    # was not sent beside, so its step too may have lost its last hope.
    for page in session.scalars(
        select(Page)
        .where(Page.incident_id == event.incident_id, Page.delivery_id == delivery_id)
        .order_by(Page.id)
    ):
        paging.request_handover(session, page)
