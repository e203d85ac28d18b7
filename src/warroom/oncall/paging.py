"""Paging and escalation, run by the worker from durable jobs.

Flow: an incident event (created, severity raised, page requested) enqueues ``oncall.start`` in the
same transaction. Its handler picks the policy and paging mode, pages step 1 (every step at once for
all hands) and enqueues ``escalation.check`` at the acknowledgement deadline (the severity's response
target for the first step, the step's delay after that). The check pages the next step, or repeats
the policy, until someone acknowledges or the incident closes; acknowledging cancels pending checks.
Personal notification rules with a delay become ``oncall.notify`` jobs that send only if the incident
is still unacknowledged. When the last of a step's pages that might have reached someone becomes a dead
letter (a webhook answering 404, a mailbox that does not exist, retries used up) and none went out,
``escalation.handover`` hands on to the next step before the deadline, as ``_page_until_reached`` does for a
step refused when it was paged. Every page row has a unique key
``page:{incident}:{policy}:{cycle}:{step}:{person}:{rule}`` (also the delivery's idempotency key), so
a replayed job or a second worker never pages anyone twice.

A person asked for by name (``warroom oncall page INC-7 --person frank``) is paged by ``oncall.page_person``
through their own notification rules, outside any escalation (``page_person_by_hand``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warroom.db import utcnow
from warroom.errors import Conflict, InvalidInput, NotFound
from warroom.events import DomainEvent, publish
from warroom.incidents import service as incident_service
from warroom.incidents.models import Incident, IncidentStatus, TimelineEntry, TimelineKind
from warroom.jobs import service as job_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.service import job_handler
from warroom.notify import service as notify_service
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.oncall import service
from warroom.oncall.config import EscalationPolicyConfig, PagingMode
from warroom.oncall.links import AckClaim, ack_url, make_ack_token, verify_ack_token
from warroom.oncall.models import Escalation, EscalationOrigin, EscalationState, Page, PageStatus
from warroom.oncall.schemas import EscalationRead, IncidentPaging, PageRead, PageRequest, PageRequested
from warroom.orgconfig import OrgConfig
from warroom.severity import service as severity_service

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.oncall")

START_KIND = "oncall.start"
CHECK_KIND = "escalation.check"
NOTIFY_KIND = "oncall.notify"
HANDOVER_KIND = "escalation.handover"
PERSON_KIND = "oncall.page_person"
RESUME_KIND = "escalation.resume"
# What a page of a person asked for by name shows where a policy's page names its policy: no policy, and so
# never a policy's name (those are ids without spaces). Its cycle and step are 0.
BY_HAND = "(by hand)"
PERFORMER = "warroom"
PAGE_TEMPLATE = "page"
MIN_ACK_WINDOW = timedelta(minutes=1)
# A page for someone who got one for the same incident at the same address less than this long ago, still
# unanswered, is recorded but not sent: two policies (or two steps of an all-hands page) reaching one person
# at once. A re-page after a deadline comes at least a step's delay later (a minute or more), and goes out.
DUPLICATE_WINDOW = timedelta(minutes=1)
# How soon the same person may be paged by hand again for the same incident (unless its severity rose since):
# a responder who pages someone every few seconds floods their phone, and a page by hand is never held back
# as a duplicate, so it is refused when asked for, with who asked last and when.
BY_HAND_REPEAT_WINDOW = timedelta(minutes=1)
# ``incident.page_requested`` starts a policy with one of these triggers: a rule's ``page`` (published by
# alert automation) is not sent once the incident is acknowledged, a page a person asked for is.
REQUESTED_BY_AUTOMATION = "requested"
REQUESTED_BY_PERSON = "requested_by_person"
# How the start of paging says that no policy covers the incident's level (said once per level reached).
_NO_POLICY = "No escalation policy covers"
# Who changes an incident without being a person: a page "caused" by them skips nobody.
NOT_PEOPLE = frozenset({PERFORMER, "automation", "notifier"})

_MODE_TEXT = {
    "all_hands": "all hands",
    "escalate": "step by step",
    "first_step": "first step only",
    "none": "nobody",
}


@dataclass(frozen=True)
class Cause:
    """What made a run (or one start of it) page, beyond the step: ``text`` is what its pages add to "Why you"
    ("raised to P0 by dana"), ``skip`` the people whose own action it was, each with what they did ("the one
    who raised it to P0"): a page they caused themselves is not sent to them (the timeline says so)."""

    text: str | None = None
    skip: dict[str, str] = field(default_factory=dict)
    # Of those skipped, the ones whose action shows they are on it (a raise, a merge, a move back): the step
    # counts them as reached and waits for its deadline, instead of handing on to the next step at once. Not
    # who asked for a page: they asked for someone else's hands.
    engaged: frozenset[str] = frozenset()


def _engaged(text: str | None, person: str, did: str) -> Cause:
    return Cause(text, {person: did}, frozenset({person}))


def _joined(*causes: Cause | None) -> Cause | None:
    given = [cause for cause in causes if cause is not None]
    if not given:
        return None
    texts = [cause.text for cause in given if cause.text]
    skip: dict[str, str] = {}
    engaged: frozenset[str] = frozenset()
    for cause in given:
        skip = {**cause.skip, **skip}  # the first cause's wording wins for a person named twice
        engaged |= cause.engaged
    return Cause("; ".join(texts) or None, skip, engaged)


def _by_person(performer: str | None) -> str | None:
    return performer if performer and performer not in NOT_PEOPLE else None


# --- requests (called from event subscribers, inside the incident's transaction) -----------------


def _opening_key(incident_id: int) -> str:
    return f"oncall.start:{incident_id}:created"


def request_paging(
    session: Session,
    *,
    incident_id: int,
    trigger: str,
    policy: str | None = None,
    at: datetime | None = None,
    severity: str | None = None,
    requested_by: str | None = None,
    note: str | None = None,
    rule: str | None = None,
    fingerprint: str | None = None,
    merged_from: int | None = None,
    raised_by: str | None = None,
    raised_to: str | None = None,
) -> Job:
    """Enqueue the start of paging; committed with the change that caused it. ``severity``: the level the
    incident opened at, which the page names even if it was raised before the worker ran. ``requested_by``:
    the person who asked for the page (trigger ``REQUESTED_BY_PERSON``). ``rule``: the automation rule whose
    ``page`` it is, and ``fingerprint`` what the policy does (``EscalationPolicyConfig.fingerprint``), so that
    a reload renaming the policy (or the rule) before the worker runs does not lose the page.
    ``merged_from``: the incident whose run of the policy a merge carried here (the merge names it).
    ``raised_by``: who raised the severity (trigger ``severity_raised``): the raise's pages say so, and skip
    them; ``raised_to``: the level they raised it to, which tells a raise lowered again before the worker ran
    (``_raise_overtaken``)."""
    at = at or utcnow()
    if trigger == "created":
        key = _opening_key(incident_id)
    else:
        key = f"oncall.start:{incident_id}:{trigger}:{policy or ''}:{at.isoformat()}"
    payload: dict[str, Any] = {
        "incident_id": incident_id,
        "trigger": trigger,
        "policy": policy,
        "at": at.isoformat(),
    }
    if requested_by is not None:
        payload["requested_by"] = requested_by
    if note:
        payload["note"] = note
    if rule:
        payload["rule"] = rule
    if fingerprint:
        payload["fingerprint"] = fingerprint
    if merged_from is not None:
        payload["merged_from"] = merged_from
    if raised_by:
        payload["raised_by"] = raised_by
    if raised_to:
        payload["raised_to"] = raised_to
    return job_service.enqueue(
        session,
        kind=START_KIND,
        payload={**payload, "severity": severity} if severity else payload,
        idempotency_key=key,
        incident_id=incident_id,
    )


def request_page_by_person(
    session: Session, org: OrgConfig, *, ref: str, request: PageRequest, performer: str
) -> PageRequested:
    """A person's page of a policy (or, with ``request.person``, of one person): checked here so that the
    answer says at once why nobody would be paged, then started by the worker like any other (it pages an
    acknowledged incident too, informing without chasing)."""
    incident = incident_service.get_incident(session, ref, for_update=True)
    _ensure_open_for_paging(session, incident)
    if request.person:
        return _request_page_of_person(session, org, incident, request=request, performer=performer)
    if request.policy:
        try:
            policy = service.get_policy(org, request.policy)
        except NotFound as exc:
            raise InvalidInput(exc.message, exc.details) from None
    else:
        found = service.policy_for_incident(org, incident.severity, incident.service_names)
        if found is None:
            raise InvalidInput(
                f"no escalation policy covers {incident.severity} for {incident.ref}'s services; "
                "name the policy to page",
                {"severity": incident.severity, "services": incident.service_names},
            )
        policy = found
    if policy.name in _policies_of(session, org, incident, active_only=True):
        own = _policy_now(org, incident)[0]
        running = next(
            (
                escalation
                for escalation in session.scalars(
                    select(Escalation)
                    .where(Escalation.incident_id == incident.id, Escalation.state == EscalationState.active)
                    .order_by(Escalation.id)
                )
                if _stands_for(org, escalation.policy, own, escalation.policy_fingerprint) == policy.name
            ),
            None,
        )
        if running is None:
            # Its start waits for the worker (a second request a moment after the first would be dropped).
            raise Conflict(
                f"a page of {policy.name} for {incident.ref} is about to go out; the worker sends it within "
                "seconds (warroom oncall pages shows it)",
                {"policy": policy.name},
            )
        if incident.acknowledged_at is None:
            due = f", next step due {running.next_check_at:%H:%M} UTC" if running.next_check_at else ""
            raise Conflict(
                f"{policy.name} is already paging {incident.ref} (at step {running.step}{due}); "
                "it goes on until someone acknowledges",
                {
                    "policy": policy.name,
                    "step": running.step,
                    "next_check_at": running.next_check_at.isoformat() if running.next_check_at else None,
                },
            )
    return _record_request(
        session, incident, performer=performer, note=request.note, policy=policy.name, person=None
    )


def _record_request(
    session: Session,
    incident: Incident,
    *,
    performer: str,
    note: str | None,
    policy: str | None,
    person: str | None,
) -> PageRequested:
    """Put a person's request to page ``policy`` or ``person`` on the timeline, and ask the worker for it."""
    whom = f"escalation policy {policy}" if policy else str(person)
    target = {"policy": policy} if policy else {"person": person}
    incident_service.append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.page,
        action=f"Page requested by {performer}: {whom}" + (f" ({note})" if note else ""),
        data={**target, "note": note},
    )
    session.flush()
    publish(
        session,
        DomainEvent(
            "incident.page_requested",
            incident.id,
            performer,
            {**target, "requested_by": performer, "note": note},
        ),
    )
    return PageRequested(
        incident=incident.ref, policy=policy, person=person, requested_by=performer, note=note
    )


def _ensure_open_for_paging(session: Session, incident: Incident) -> None:
    """A page is asked for an open incident. One merged into another names where its alerts and pages went,
    following the merges made since to the last (INC-1 into INC-2, then INC-2 into INC-3: page INC-3)."""
    if incident.status.is_open:
        return
    chain = incident_service.merge_chain(session, incident)
    if not chain:
        raise Conflict(
            f"{incident.ref} is {incident.status.value}; reopen it before paging anyone for it",
            {"status": incident.status.value},
        )
    survivor = chain[-1]
    merged = incident_service.merged_words(incident, chain)
    then = (
        f"page {survivor.ref} instead"
        if survivor.status.is_open
        else f"{survivor.ref} is {survivor.status.value}; reopen it before paging anyone for it"
    )
    raise Conflict(
        f"{merged}: {then}",
        {
            "status": incident.status.value,
            "merged_into": survivor.ref,
            "merged_through": [later.ref for later in chain],
        },
    )


def _request_page_of_person(
    session: Session, org: OrgConfig, incident: Incident, *, request: PageRequest, performer: str
) -> PageRequested:
    """A person paged by name (``warroom oncall page INC-7 --person carol``): checked here, sent by the worker
    through their notification rules (``page_person_by_hand``)."""
    assert request.person is not None
    try:
        person = service.get_person(org, request.person)
    except NotFound as exc:
        at_fault = [{"field": "person", **entry} for entry in exc.details or [{"message": exc.message}]]
        raise InvalidInput(exc.message, at_fault) from None
    waiting = session.scalar(
        select(Job.id).where(
            Job.incident_id == incident.id,
            Job.kind == PERSON_KIND,
            Job.status.in_([JobStatus.pending, JobStatus.running]),
            Job.payload["person"].as_string() == person.name,
        )
    )
    if waiting is not None:
        # A second request a moment after the first (a double click): the first is about to page them.
        raise Conflict(
            f"a page of {person.name} for {incident.ref} is about to go out; the worker sends it within "
            "seconds (warroom oncall pages shows it)",
            {"person": person.name},
        )
    _refuse_repeat_by_hand(session, incident, person.name)
    return _record_request(
        session, incident, performer=performer, note=request.note, policy=None, person=person.name
    )


def _refuse_repeat_by_hand(session: Session, incident: Incident, person: str) -> None:
    """409 when ``person`` was paged by hand for ``incident`` less than BY_HAND_REPEAT_WINDOW ago and its
    severity has not risen since: the request names who asked last, when, and when another may go."""
    now = utcnow()
    last = session.scalars(
        select(TimelineEntry)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.page,
            TimelineEntry.performer != PERFORMER,  # the requests; the worker's "Paged … by hand" are its own
            TimelineEntry.data["person"].as_string() == person,
            TimelineEntry.occurred_at > now - BY_HAND_REPEAT_WINDOW,
        )
        .order_by(TimelineEntry.seq.desc())
        .limit(1)
    ).first()
    if last is None:
        return
    raised_since = session.scalar(
        select(TimelineEntry.id).where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind == TimelineKind.severity_change,
            TimelineEntry.seq > last.seq,
            TimelineEntry.data["direction"].as_string() == "raised",
        )
    )
    if raised_since is not None:
        return
    again_at = last.occurred_at + BY_HAND_REPEAT_WINDOW
    wait = max(1, int((again_at - now).total_seconds() + 0.999))
    raise Conflict(
        f"{person} was paged by hand for {incident.ref} by {last.performer} at "
        f"{last.occurred_at:%H:%M:%S} UTC, {int((now - last.occurred_at).total_seconds())}s ago: the same "
        f"person is paged by hand for an incident at most once per "
        f"{int(BY_HAND_REPEAT_WINDOW.total_seconds())}s (unless its severity rises); ask again in {wait}s",
        {
            "person": person,
            "last_requested_by": last.performer,
            "last_requested_at": last.occurred_at.isoformat(),
            "retry_after_seconds": wait,
        },
    )


def request_person_page(
    session: Session, *, incident_id: int, person: str, requested_by: str, note: str | None, at: datetime
) -> Job:
    """Enqueue the page of one person asked for by name; committed with the request."""
    payload: dict[str, Any] = {
        "incident_id": incident_id,
        "person": person,
        "requested_by": requested_by,
        "at": at.isoformat(),
    }
    if note:
        payload["note"] = note
    return job_service.enqueue(
        session,
        kind=PERSON_KIND,
        payload=payload,
        idempotency_key=f"{PERSON_KIND}:{incident_id}:{person}:{at.isoformat()}",
        incident_id=incident_id,
    )


def _policies_of(
    session: Session, org: OrgConfig, incident: Incident, *, active_only: bool, held_too: bool = False
) -> set[str]:
    """The policies that page (``active_only``) or have paged the incident, plus those whose start waits for
    the worker. An escalation on a policy a reload renamed or removed counts as the policy that takes it over
    at its next deadline (``_policy_now``): it is the same people, already paged."""
    statement = select(Escalation.policy, Escalation.policy_fingerprint).where(
        Escalation.incident_id == incident.id
    )
    if active_only:
        states = [EscalationState.active] + ([EscalationState.monitoring] if held_too else [])
        statement = statement.where(Escalation.state.in_(states))
    own = _policy_now(org, incident)[0]
    names = {_stands_for(org, name, own, fingerprint) for name, fingerprint in session.execute(statement)}
    for job in session.scalars(
        select(Job).where(
            Job.incident_id == incident.id,
            Job.kind == START_KIND,
            Job.status.in_([JobStatus.pending, JobStatus.running]),
        )
    ):
        named = job.payload.get("policy")
        # A start naming no policy is the incident's own (opening, raise): its policy as it stands now.
        names.add(named if isinstance(named, str) else own.name if own is not None else None)
    return {name for name in names if name is not None}


def _rule_page_now(org: OrgConfig, rule: str | None) -> str | None:
    """The policy the automation rule ``rule`` pages in the org file now (None: no such rule, or no page)."""
    found = next((candidate for candidate in org.automation.rules if candidate.name == rule), None)
    return found.page if found is not None and found.page and _policy_named(org, found.page) else None


def _policy_doing(org: OrgConfig, fingerprint: str | None) -> str | None:
    """The one policy of the org file with this fingerprint (None: none, or several alike)."""
    alike = [
        policy.name for policy in org.escalation_policies if fingerprint and policy.fingerprint == fingerprint
    ]
    return alike[0] if len(alike) == 1 else None


def _stands_for(
    org: OrgConfig, name: str, own: EscalationPolicyConfig | None, fingerprint: str | None = None
) -> str | None:
    """The policy an escalation on ``name`` is now: itself while the org file has it, else the one policy
    doing what it did (``fingerprint``: a reload only renamed it), else the incident's own policy now
    (``own``), which takes it over at its next deadline."""
    if _policy_named(org, name):
        return name
    renamed = _policy_doing(org, fingerprint)
    if renamed is not None:
        return renamed
    return own.name if own is not None else None


def _policy_named(org: OrgConfig, name: str) -> bool:
    try:
        service.get_policy(org, name)
    except NotFound:
        return False
    return True


def policies_not_paging(
    session: Session, org: OrgConfig, incident: Incident, policies: list[str]
) -> list[str]:
    """Of ``policies``, those the incident has never started (no escalation, and no start waiting for the
    worker): an alert that joins the incident asks for these, the others have paged it already."""
    if not policies:
        return []
    started = _policies_of(session, org, incident, active_only=False)
    return [policy for policy in policies if policy not in started]


def rule_of_run(session: Session, incident_id: int, policy: str) -> str | None:
    """The rule whose ``page`` started the incident's run of ``policy``, or whose start of it waits for the
    worker: the latest rule to ask for it (kept in the start's payload). None when the run is the incident's
    own or a person's."""
    escalation = session.scalar(
        select(Escalation).where(Escalation.incident_id == incident_id, Escalation.policy == policy)
    )
    starts = session.execute(
        select(Job.payload, Job.status)
        .where(Job.kind == START_KIND, Job.incident_id == incident_id)
        .order_by(Job.id.desc())
    )
    for payload, status in starts:
        if payload.get("policy") != policy or payload.get("trigger") != REQUESTED_BY_AUTOMATION:
            continue
        waiting = status in (JobStatus.pending, JobStatus.running)
        if escalation is not None and not waiting and _origin(escalation) != EscalationOrigin.rule:
            return None  # a rule asked while the run was another's: it stayed that one
        rule = payload.get("rule")
        return rule if isinstance(rule, str) and rule else None
    return None


def carry_over(
    session: Session,
    org: OrgConfig,
    *,
    source: Incident,
    target: Incident,
    policies: list[str],
    performer: str,
) -> None:
    """A merge of ``source`` into ``target``: each of ``policies`` (``source``'s running escalations that
    ``target`` has not) goes on on ``target`` where it was: the same step and pass, the same deadline, its
    step's delayed personal rules still waiting; nobody is paged for the merge itself. Its origin is
    ``merge``, and its pages say so. ``performer``, when a person merged, is not paged by it (they know). A
    policy whose start still waits for the worker is asked for on ``target`` instead. Call before ``source``
    is resolved (that stops its escalations); the caller holds both incidents' locks."""
    by = _by_person(performer)
    own = _policy_now(org, source)[0]
    running = {
        _stands_for(org, escalation.policy, own, escalation.policy_fingerprint): escalation
        for escalation in session.scalars(
            select(Escalation)
            .where(
                Escalation.incident_id == source.id,
                # One held while ``source`` is in monitoring goes too: its people were paged, nobody answered.
                Escalation.state.in_([EscalationState.active, EscalationState.monitoring]),
            )
            .order_by(Escalation.id)
            .with_for_update()
        )
    }
    now = utcnow()
    resume = False
    for name in policies:
        carried = running.get(name)
        # ``policy`` as the run on ``target`` is named (``_merge_entry`` finds it by that name).
        data: dict[str, Any] = {"policy": carried.policy if carried else name, "merged": source.id, "by": by}
        if carried is None:
            # Not started yet (its start waits for the worker): started on ``target`` instead.
            _timeline(
                session,
                target,
                f"Page requested: escalation policy {name} (it was about to page {source.ref}, "
                "unacknowledged; it came with the merge)",
                kind=TimelineKind.page,
                data=data,
            )
            session.flush()
            publish(
                session,
                DomainEvent(
                    "incident.page_requested", target.id, PERFORMER, {"policy": name, "merged": source.id}
                ),
            )
            continue
        escalation = session.scalar(
            select(Escalation)
            .where(Escalation.incident_id == target.id, Escalation.policy == carried.policy)
            .with_for_update()
        )
        passes = carried.cycle - carried.first_cycle
        if escalation is None:
            escalation = Escalation(
                incident_id=target.id, policy=carried.policy, started_at=carried.started_at
            )
            session.add(escalation)
            escalation.first_cycle = carried.first_cycle
        else:
            # ``target`` ran this policy before (stopped since): new cycle numbers keep its page keys unique.
            job_service.cancel(session, idempotency_key=_check_key(target.id, escalation))
            escalation.first_cycle = escalation.cycle + 1
        escalation.cycle = escalation.first_cycle + passes
        escalation.step = carried.step
        escalation.mode = carried.mode
        escalation.severity = carried.severity
        escalation.policy_fingerprint = carried.policy_fingerprint
        escalation.state = EscalationState.active
        escalation.updated_at = carried.updated_at  # the step was paged then: "not acknowledged within …"
        escalation.requested_by = carried.requested_by
        escalation.request_note = carried.request_note
        escalation.origin = EscalationOrigin.merge
        session.flush()
        number = passes + 1
        at_step = f"at step {carried.step}" + (f", pass {number}" if number > 1 else "")
        was = (
            f"was paging {source.ref} (unacknowledged)"
            if carried.state == EscalationState.active
            else f"was held on {source.ref} (in monitoring, unacknowledged)"
        )
        if target.status == IncidentStatus.monitoring:
            # Held here as every run of an incident in monitoring is; its delayed rules wait for nobody.
            escalation.state = EscalationState.monitoring
            escalation.next_check_at = None
            _timeline(
                session,
                target,
                f"Escalation carried over: {carried.policy} {was} and is held here {at_step}: {target.ref} "
                f"is in monitoring; it goes on from that step if {target.ref} goes back to investigating. "
                "Nobody is paged for the merge",
                kind=TimelineKind.page,
                data={**data, "step": carried.step, "held": True},
            )
            continue
        if carried.state == EscalationState.monitoring:
            # Its deadline went when it was held: it goes on as a held run does when its incident comes back
            # (``resume_escalations``, run by the worker: its step, paged less than its delay ago, is not
            # paged again).
            escalation.state = EscalationState.monitoring
            escalation.next_check_at = None
            _timeline(
                session,
                target,
                f"Escalation carried over: {carried.policy} {was} and goes on here {at_step}, as when an "
                f"incident leaves monitoring ({target.ref} is {target.status.value}); nobody is paged for "
                "the merge itself",
                kind=TimelineKind.page,
                data={**data, "step": carried.step, "resumed": True},
            )
            resume = True
            continue
        deadline = carried.next_check_at or now + MIN_ACK_WINDOW
        _timeline(
            session,
            target,
            f"Escalation carried over: {carried.policy} {was} and goes on here {at_step}, next step due "
            f"{deadline:%H:%M:%S} UTC; nobody is paged again for the merge",
            kind=TimelineKind.page,
            data={**data, "step": carried.step, "deadline": deadline.isoformat()},
        )
        _carry_waiting_pages(session, carried, escalation, target, skip=by)
        _schedule_check(session, target, escalation, deadline)
    if resume:
        job_service.enqueue(
            session,
            kind=RESUME_KIND,
            payload={
                "incident_id": target.id,
                "performer": performer,
                "at": now.isoformat(),
                "merged": source.id,
            },
            idempotency_key=f"{RESUME_KIND}:{target.id}:merge:{source.id}:{now.isoformat()}",
            incident_id=target.id,
        )


def _new_page(
    session: Session,
    incident_id: int,
    escalation: Escalation,
    step: int,
    person: str,
    rule: int,
    *,
    channel: str,
    to: str,
    via: str,
    created_at: datetime,
    send_at: datetime,
) -> Page | None:
    """A page of ``escalation``'s pass to ``person`` by one of their rules, scheduled for ``send_at``; None
    when that page exists already (its key: a replay of the same work)."""
    key = page_key(incident_id, escalation.policy, escalation.cycle, step, person, rule)
    if session.scalar(select(Page.id).where(Page.key == key)) is not None:
        return None
    return Page(
        key=key,
        incident_id=incident_id,
        escalation_id=escalation.id,
        policy=escalation.policy,
        cycle=escalation.cycle,
        step=step,
        person=person,
        rule=rule,
        channel=channel,
        to=to,
        via=via,
        status=PageStatus.scheduled,
        created_at=created_at,
        send_at=send_at,
    )


def _carry_waiting_pages(
    session: Session, carried: Escalation, escalation: Escalation, target: Incident, *, skip: str | None
) -> None:
    """The delayed personal rules of ``carried``'s step still waiting (a slack after 5m) wait on ``target``
    now, as pages of ``escalation``; not those of ``skip``, who merged. ``source``'s are cancelled when it is
    resolved by the merge."""
    waiting = session.scalars(
        select(Page)
        .where(
            Page.escalation_id == carried.id,
            Page.cycle == carried.cycle,
            Page.status == PageStatus.scheduled,
        )
        .order_by(Page.id)
    )
    for old in waiting:
        if old.person == skip:
            continue
        page = _new_page(
            session,
            target.id,
            escalation,
            old.step,
            old.person,
            old.rule,
            channel=old.channel,
            to=old.to,
            via=old.via,
            created_at=old.created_at,
            send_at=old.send_at,
        )
        if page is None:
            continue
        session.add(page)
        session.flush()
        job_service.enqueue(
            session,
            kind=NOTIFY_KIND,
            payload={"page_id": page.id},
            run_at=page.send_at,
            idempotency_key=page.key,
            incident_id=target.id,
        )


def policies_escalating(session: Session, org: OrgConfig, incident: Incident) -> list[str]:
    """The policies paging the incident now or about to (a start waiting for the worker), or held while it
    is in monitoring, by name: what a merge carries to the incident it is merged into
    (``automation.merge_into``)."""
    return sorted(_policies_of(session, org, incident, active_only=True, held_too=True))


def request_reminder(session: Session, *, incident_id: int, trigger: str, at: datetime) -> list[Job]:
    """Page the incident's responders again as a reminder (a snoozed alert still fires): the policies that
    paged it, whichever asked for them (its severity and services, or a rule's ``page``), each from its first
    step. A policy another took over from (severity raised) or that a level paging nobody silenced is left
    out; with none left, the incident's policy is worked out as for a new page (which may page nobody). A
    policy that reminded less than its first step's delay before pages nobody again (``start_paging``)."""
    policies = list(
        session.scalars(
            select(Escalation.policy)
            .where(
                Escalation.incident_id == incident_id,
                Escalation.state.not_in([EscalationState.superseded, EscalationState.silent]),
            )
            .order_by(Escalation.id)
        )
    )
    if not policies:
        return [request_paging(session, incident_id=incident_id, trigger=trigger, at=at)]
    return [
        request_paging(session, incident_id=incident_id, trigger=trigger, policy=policy, at=at)
        for policy in policies
    ]


def stop_escalations(session: Session, *, incident_id: int, reason: EscalationState, performer: str) -> int:
    """Stop every active escalation of the incident and cancel its pending checks and delayed pages. With
    ``reason`` ``monitoring`` they are held instead: the incident is in monitoring, and they go on from the
    step they were at if it goes back to investigating (``resume_escalations``); one held so stops for good
    with any other reason (acknowledged, resolved, a level that pages nobody)."""
    held = [EscalationState.active]
    if reason != EscalationState.monitoring:
        held.append(EscalationState.monitoring)
    active = list(
        session.scalars(
            select(Escalation)
            .where(Escalation.incident_id == incident_id, Escalation.state.in_(held))
            .order_by(Escalation.id)
            .with_for_update()
        )
    )
    if reason == EscalationState.monitoring and not active:
        return 0  # nothing escalates: a page by hand's delayed rules, say, are left as they are
    job_service.cancel(session, kind=CHECK_KIND, incident_id=incident_id)
    job_service.cancel(session, kind=NOTIFY_KIND, incident_id=incident_id)
    job_service.cancel(session, kind=HANDOVER_KIND, incident_id=incident_id)
    for page in session.scalars(
        select(Page).where(Page.incident_id == incident_id, Page.status == PageStatus.scheduled)
    ):
        page.status = PageStatus.cancelled
    # Pages handed to delivery but not out yet (a mail server down, retrying): nobody needs them now.
    handed = session.scalars(
        select(Page.delivery_id).where(Page.incident_id == incident_id, Page.delivery_id.is_not(None))
    )
    notify_service.withdraw(
        session,
        delivery_ids=[delivery_id for delivery_id in handed if delivery_id is not None],
        reason=f"not sent: escalation stopped ({reason.value})",
    )
    if not active:
        return 0
    incident = incident_service.get_incident(session, incident_id, for_update=True)
    now = utcnow()
    for escalation in active:
        escalation.state = reason
        escalation.next_check_at = None
        escalation.updated_at = now
        if reason == EscalationState.silent:
            escalation.severity = incident.severity  # the level that silenced it, not the one it ran at
    names = ", ".join(e.policy for e in active)
    then = ""
    if reason == EscalationState.monitoring:
        # Monitoring means the fix is in place (automation moves an incident there when all its alerts
        # resolved): the next steps would wake people for a problem that is over as far as anyone knows.
        why = f"{incident.ref} is in monitoring: " + (
            "all its alerts resolved" if _by_person(performer) is None else f"{performer} moved it there"
        )
        names = ", ".join(f"{e.policy} at step {e.step}" for e in active)
        then = (
            f"; it goes on from that step if {incident.ref} goes back to investigating (an alert firing "
            "again), and stops if it is acknowledged or resolved"
        )
    else:
        why = (
            "acknowledged"
            if reason == EscalationState.acknowledged
            else f"{incident.severity} pages nobody"
            if reason == EscalationState.silent
            else f"incident {incident.status.value}"
        )
    incident_service.append_timeline(
        session,
        incident,
        performer=PERFORMER,
        kind=TimelineKind.automation,
        action=f"Escalation stopped ({why}): {names}{then}",
        data={"policies": [e.policy for e in active], "reason": reason.value, "by": performer},
    )
    return len(active)


def request_resume(session: Session, *, incident_id: int, performer: str, at: datetime) -> Job | None:
    """The incident left monitoring for investigating or identified: its escalations held there go on
    (``resume_escalations``, run by the worker). Nothing when none is held."""
    held = session.scalar(
        select(Escalation.id)
        .where(Escalation.incident_id == incident_id, Escalation.state == EscalationState.monitoring)
        .limit(1)
    )
    if held is None:
        return None
    return job_service.enqueue(
        session,
        kind=RESUME_KIND,
        payload={"incident_id": incident_id, "performer": performer, "at": at.isoformat()},
        idempotency_key=f"{RESUME_KIND}:{incident_id}:{at.isoformat()}",
        incident_id=incident_id,
    )


def resume_escalations(
    session: Session, context: AppContext, *, incident_id: int, performer: str, merged_from: int | None = None
) -> dict[str, Any]:
    """The escalations held while the incident was in monitoring go on: the problem is back and nobody has
    acknowledged it. Each pages the step it was at again, in a new pass with a fresh repeat count (its people
    were paged before it looked fixed, maybe long ago), with that step's delay to answer; then it escalates
    as before. The person who moved it back, if one did, is not paged by it (they know). A step paged less
    than its delay before (an alert flapping) is not paged again: it gets the rest of its time; for a run a
    merge brought, that counts its pages on the merged incident. ``merged_from``: a merge of that incident
    brought runs held there (in monitoring) to this one, which is not (``carry_over``)."""
    try:
        incident = incident_service.get_incident(session, incident_id, for_update=True)
    except NotFound:
        return {"skipped": "incident gone"}
    if (
        not incident.status.is_open
        or incident.status == IncidentStatus.monitoring
        or incident.acknowledged_at is not None
    ):
        return {"skipped": f"incident is {incident.status.value}"}
    held = list(
        session.scalars(
            select(Escalation)
            .where(Escalation.incident_id == incident.id, Escalation.state == EscalationState.monitoring)
            .order_by(Escalation.id)
            .with_for_update()
        )
    )
    mode = service.paging_mode(context.org, incident.severity)
    if not held or mode == "none":
        return {"skipped": "nothing held"}
    move = session.scalar(
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident.id, TimelineEntry.kind == TimelineKind.status_change)
        .order_by(TimelineEntry.seq.desc())
        .limit(1)
    )
    note = move.action.partition(" — ")[2] if move is not None else ""
    reason = f"{incident.ref} back to {incident.status.value}" + (f": {note}" if note else "")
    mover = _by_person(performer)
    if merged_from is not None:
        # Nobody moved it back: the run came with a merge, whose merger ``_run_cause`` skips.
        reason = (
            f"held on INC-{merged_from} in monitoring, merged into {incident.ref} ({incident.status.value})"
        )
        mover = None
    moved = _engaged(None, mover, f"the one who moved it back to {incident.status.value}") if mover else None
    now = utcnow()
    resumed: list[str] = []
    for escalation in held:
        escalation.state = EscalationState.active
        escalation.updated_at = now
        # A new pass, with a fresh repeat count: page keys and the check's key stay unique.
        escalation.cycle += 1
        escalation.first_cycle = escalation.cycle
        run_ids = _run_escalation_ids(session, incident, escalation)
        try:
            policy = service.get_policy(context.org, escalation.policy)
        except NotFound:
            # A reload renamed or removed it meanwhile: it is handed over now, as at a deadline, but the
            # new run goes on as this one would (a renamed policy from the step it was at, paged again),
            # not as if a deadline had passed unacknowledged.
            taken = _hand_over(session, context, incident, escalation, now, resuming=True)
            if not isinstance(taken, tuple):
                continue
            policy, escalation = taken
            run_ids = _run_escalation_ids(session, incident, escalation) + run_ids
        escalation.mode = mode
        escalation.step, delay, last = _resumed_step(session, policy, escalation.step, run_ids, now)
        if last is not None:
            # Its step was paged less than the step's time ago (an alert flapping between monitoring and
            # investigating): they have the rest of that time, and are not paged again for each return.
            due = last + delay
            if escalation.step == 1:  # as when it was paged: the severity's response target, if it has one
                due = (
                    severity_service.response_due_at(
                        context.org, incident.severity, last, incident.service_names
                    )
                    or due
                )
            deadline = max(due, now + MIN_ACK_WINDOW)
            escalation.updated_at = last  # "not acknowledged within …" counts from that page
            _timeline(
                session,
                incident,
                f"Escalation goes on ({reason}): {policy.name} at step {escalation.step}, paged "
                f"{_waited(now - last)} ago, not paged again; next step due {deadline:%H:%M:%S} UTC",
                kind=TimelineKind.automation,
                data={"policy": policy.name, "step": escalation.step, "deadline": deadline.isoformat()},
            )
            _schedule_check(session, incident, escalation, deadline)
            continue
        deadline = now + delay
        _page_until_reached(
            session,
            context,
            incident,
            policy,
            escalation,
            reason=reason,
            ack_by=deadline,
            cause=_joined(moved, _run_cause(session, incident, escalation)),
        )
        _schedule_check(session, incident, escalation, deadline)
        resumed.append(policy.name)
    return {"resumed": [e.policy for e in held], "paged": resumed}


def _resumed_step(
    session: Session, policy: EscalationPolicyConfig, step: int, run_ids: list[int], now: datetime
) -> tuple[int, timedelta, datetime | None]:
    """Where a held run resumes (``resume_escalations``, and the dry run's ``resume_preview``): the step it
    was at, within the policy's steps; that step's delay; and when that step was last paged, if less than
    its delay before ``now`` (then it is not paged again), else None (it is paged again)."""
    step = min(max(step, 1), max(len(policy.steps), 1))
    delay = max(policy.steps[step - 1].delay, MIN_ACK_WINDOW)
    last = session.scalar(
        select(func.max(Page.created_at)).where(
            # A run a merge brought paged its step on the merged incident, maybe moments ago; a run a
            # rename handed over paged it under the old name.
            Page.escalation_id.in_(run_ids),
            Page.step == step,
            Page.status.in_([PageStatus.sent, PageStatus.duplicate]),
        )
    )
    return step, delay, last if last is not None and now - last < delay else None


def resume_preview(session: Session, org: OrgConfig, incident: Incident) -> tuple[list[str], list[str]]:
    """What ``resume_escalations`` would do now with the escalations held on ``incident`` (in monitoring,
    not acknowledged) once it is back to investigating, writing nothing: those paging their step again
    (``policy at step N``) and those whose step was paged less than its delay ago, not paged again
    (``policy at step N, paged 18s ago``). None resume in a severity that pages nobody."""
    if service.paging_mode(org, incident.severity) == "none":
        return [], []
    held = session.scalars(
        select(Escalation)
        .where(Escalation.incident_id == incident.id, Escalation.state == EscalationState.monitoring)
        .order_by(Escalation.id)
    )
    now = utcnow()
    pages_again: list[str] = []
    not_again: list[str] = []
    for escalation in held:
        try:
            policy = service.get_policy(org, escalation.policy)
        except NotFound:
            # Renamed or removed by a reload: handed over, and the new run pages from its step.
            pages_again.append(f"{escalation.policy} at step {escalation.step}")
            continue
        run_ids = _run_escalation_ids(session, incident, escalation)
        step, _, last = _resumed_step(session, policy, escalation.step, run_ids, now)
        if last is None:
            pages_again.append(f"{policy.name} at step {step}")
        else:
            not_again.append(f"{policy.name} at step {step}, paged {_waited(now - last)} ago")
    return pages_again, not_again


def follow_lowered_severity(session: Session, org: OrgConfig, *, incident_id: int, performer: str) -> int:
    """The incident was lowered to a level that still pages: its running escalations go on in that level's
    mode, paging nobody now. A P1 lowered to P2 pages its first step only, not on to the manager; a P0
    lowered to P1 no longer pages every step at once (all were paged, so it goes on from the first step at
    the next deadline)."""
    active = list(
        session.scalars(
            select(Escalation)
            .where(Escalation.incident_id == incident_id, Escalation.state == EscalationState.active)
            .with_for_update()
        )
    )
    if not active:
        return 0
    incident = incident_service.get_incident(session, incident_id, for_update=True)
    mode = service.paging_mode(org, incident.severity)
    # Only the mode changes: ``severity`` stays the level the escalation paged at, which tells a raise still
    # on its way to the worker (P2, raised to P0, lowered to P1: it pages at P1) from one lowered again to
    # that level or below (P1, raised to P0, lowered to P2: nothing restarts, ``_raise_overtaken``).
    changed = [escalation for escalation in active if escalation.mode != mode]
    for escalation in changed:
        if escalation.mode == "all_hands" and escalation.next_check_at is not None:
            try:
                last_step = max(1, len(service.get_policy(org, escalation.policy).steps))
            except NotFound:
                last_step = escalation.step  # the check that finds the policy gone hands it over
            if last_step != escalation.step:
                # The check is keyed by its step: move it, at the same deadline, to the last step's.
                job_service.cancel(session, idempotency_key=_check_key(incident.id, escalation))
                escalation.step = last_step
                _schedule_check(session, incident, escalation, escalation.next_check_at)
        escalation.mode = mode
    if changed:
        _timeline(
            session,
            incident,
            f"Escalation goes on {_MODE_TEXT[mode]} for {incident.severity}: "
            + ", ".join(e.policy for e in changed),
            kind=TimelineKind.automation,
            data={"policies": [e.policy for e in changed], "mode": mode, "by": performer},
        )
    return len(changed)


# --- starting -------------------------------------------------------------------------------------


def _timeline(session: Session, incident: Incident, action: str, *, kind: str, data: dict[str, Any]) -> None:
    incident_service.append_timeline(
        session, incident, performer=PERFORMER, kind=kind, action=action, data=data
    )


def _note_request_not_paged(session: Session, incident: Incident, policy: str | None, why: str) -> None:
    """A rule's page (requested by automation) the worker did not send: the timeline shows the request, so
    it says why nobody followed it."""
    _timeline(
        session,
        incident,
        f"Page of {policy or 'the escalation policy'} requested by automation not sent: {why}",
        kind=TimelineKind.automation,
        data={
            "policy": policy,
            "status": incident.status.value,
            "acknowledged_by": incident.acknowledged_by,
        },
    )


def start_paging(
    session: Session,
    context: AppContext,
    *,
    incident_id: int,
    trigger: str,
    policy_name: str | None = None,
    at: datetime | None = None,
    opened_at: str | None = None,
    requested_by: str | None = None,
    note: str | None = None,
    rule: str | None = None,
    fingerprint: str | None = None,
    merged_from: int | None = None,
    raised_by: str | None = None,
    raised_to: str | None = None,
) -> dict[str, Any]:
    org = context.org
    at = at or utcnow()
    try:
        incident = incident_service.get_incident(session, incident_id, for_update=True)
    except NotFound:
        return {"skipped": "incident gone"}
    if not incident.status.is_open:
        if trigger == REQUESTED_BY_AUTOMATION:
            _note_request_not_paged(
                session, incident, policy_name, f"{incident.ref} is {incident.status.value}"
            )
        return {"skipped": f"incident is {incident.status.value}"}
    if trigger in ("created", REQUESTED_BY_AUTOMATION) and incident.acknowledged_at is not None:
        # Someone took it before the worker got here: paging them now would only be noise. (A page a
        # person asked for, a snooze's reminder and a severity raise page an acknowledged incident still.)
        if trigger == REQUESTED_BY_AUTOMATION:
            _note_request_not_paged(
                session,
                incident,
                policy_name,
                f"{incident.ref} was acknowledged by {incident.acknowledged_by} before it went out",
            )
        return {"skipped": f"already acknowledged by {incident.acknowledged_by}"}
    if trigger == "severity_raised":
        overtaken = _raise_overtaken(session, org, incident, raised_to=raised_to, raised_by=raised_by)
        if overtaken is not None:
            return overtaken
    severity = incident.severity
    mode: PagingMode = service.paging_mode(org, severity)
    policy: EscalationPolicyConfig | None
    if policy_name and trigger == "snooze_ended":
        # A reminder for a policy a reload renamed or removed goes to the policy that takes its escalation
        # over (the incident's own now), as the escalation itself is handed over.
        policy_name = _stands_for(org, policy_name, _policy_now(org, incident)[0])
    if policy_name:
        try:
            policy = service.get_policy(org, policy_name)
        except NotFound as exc:
            # A reload renamed the policy (or the rule, or gave the rule another) after the page was asked
            # for: it goes to what the rule pages now, else to the policy that does what this one did.
            now_pages, why = _rule_page_now(org, rule), f"rule {rule} pages it now"
            if now_pages is None:
                now_pages, why = _policy_doing(org, fingerprint), "it has the same steps"
            if now_pages is not None and now_pages != policy_name:
                if now_pages in policies_not_paging(session, org, incident, [now_pages]):
                    _timeline(
                        session,
                        incident,
                        f"Escalation policy {policy_name!r} is no longer in the org file; {now_pages} is "
                        f"paged instead ({why})",
                        kind=TimelineKind.automation,
                        data={"policy": policy_name, "rule": rule, "instead": now_pages},
                    )
                    request_paging(
                        session,
                        incident_id=incident.id,
                        trigger=trigger,
                        policy=now_pages,
                        at=at,
                        rule=rule,
                        requested_by=requested_by,
                        note=note,
                        merged_from=merged_from,
                    )
                    return {"replaced_by": now_pages}
                return {"skipped": f"unknown policy; {now_pages}, which stands for it now, pages already"}
            _timeline(
                session,
                incident,
                f"Page requested for unknown escalation policy {policy_name!r}; nobody paged",
                kind=TimelineKind.automation,
                data={"policy": policy_name, "error": exc.message},
            )
            return {"skipped": "unknown policy"}
        if mode == "none":
            mode = "first_step"  # paging was asked for explicitly
    else:
        if mode == "none":
            note_nobody_paged(session, org, incident, at)
            return {"skipped": "severity pages nobody"}
        policy = service.policy_for_incident(org, severity, incident.service_names)
        if policy is None:
            if trigger in ("created", "severity_raised") and _no_policy_noted(session, incident):
                # The opening's job and a raise's (or two raises') found the same level: one fact, one entry.
                return {"skipped": "no policy (noted already)"}
            _timeline(
                session,
                incident,
                f"{_NO_POLICY} {severity} here, so none is paged for it "
                f"({service.why_no_policy(org, severity, incident.service_names)}); a rule's page still "
                "pages its own",
                kind=TimelineKind.automation,
                data={"severity": severity, "services": incident.service_names},
            )
            return {"skipped": "no policy"}

    escalation = session.scalar(
        select(Escalation)
        .where(Escalation.incident_id == incident.id, Escalation.policy == policy.name)
        .with_for_update()
    )
    if escalation is not None and trigger == "created":
        return {"skipped": "already started"}
    origin = (
        EscalationOrigin.merge
        if merged_from is not None
        else _ORIGIN_OF.get(trigger, EscalationOrigin.incident)
    )
    if (
        escalation is not None
        and escalation.state == EscalationState.active
        and trigger in (REQUESTED_BY_AUTOMATION, REQUESTED_BY_PERSON, "snooze_ended")
        and incident.acknowledged_at is None
    ):
        if trigger != "snooze_ended" and _origin(escalation) == EscalationOrigin.incident:
            # The run asked for is the incident's own one: it is asked for now, so a later raise to a level
            # with another policy does not supersede it (as it would not had this request started it).
            escalation.origin = origin
        return {"skipped": f"{policy.name} is already escalating"}
    if (
        escalation is not None
        and escalation.state == EscalationState.active
        and trigger == "severity_raised"
        and escalation.severity == severity
    ):
        # It started at this level already: a rule asked for this policy at the new level before the raise's
        # job ran (the incident's own run at this level, started by the opening's job or another raise's,
        # is ``_raise_overtaken``'s). The incident's own run at the old level is superseded all the same,
        # whichever of the jobs ran first.
        _supersede_own_runs(session, incident, policy.name)
        return {"skipped": f"{policy.name} is already escalating at {severity}"}
    if trigger == "snooze_ended":
        last = _last_reminder(session, incident.id, policy.name)
        span = first_step_delay(policy)
        if last is not None and abs(at - last) < span:
            # Several alerts' snoozes ending together (a snooze by incident or by filter) would page the same
            # people once per alert: they have not had the step's time to answer the first reminder yet.
            return {
                "skipped": f"{policy.name} sent a reminder at {last:%H:%M:%S} UTC "
                f"(one per {_minutes(span)}, its first step's delay)"
            }

    reason_trigger = trigger
    if trigger == "severity_raised" and escalation is None:
        opening = _opening_start_not_run(session, incident.id)
        if opening is not None:
            # The raise's job ran before the opening page's (a worker runs a batch at once): this is the
            # incident's first page, so it says both levels; the opening's job then finds it started.
            reason_trigger, opened_at = "created", opening.payload.get("severity") or opened_at

    if trigger == "severity_raised":
        _supersede_own_runs(session, incident, policy.name)

    now = utcnow()
    if escalation is None:
        escalation = Escalation(
            incident_id=incident.id,
            policy=policy.name,
            mode=mode,
            severity=severity,
            state=EscalationState.active,
            cycle=1,
            first_cycle=1,
            step=1,
            started_at=now,
            updated_at=now,
            origin=origin,
        )
        session.add(escalation)
        session.flush()
    else:
        if trigger != "snooze_ended" and not (
            # A raise restarting a run a rule or person asked for: it was asked for, and stays so.
            escalation.state == EscalationState.active and _origin(escalation) != EscalationOrigin.incident
        ):
            escalation.origin = origin
        if escalation.state == EscalationState.active:
            job_service.cancel(session, idempotency_key=_check_key(incident.id, escalation))
        escalation.cycle += 1
        escalation.first_cycle = escalation.cycle
        escalation.step = 1
        escalation.mode = mode
        escalation.severity = severity
        escalation.state = EscalationState.active
        escalation.updated_at = now

    escalation.policy_fingerprint = policy.fingerprint  # as the policy is now, for a later rename
    # Every page of the run says who asked for it and why; a run started otherwise says nothing of the kind.
    by_person = trigger == REQUESTED_BY_PERSON
    escalation.requested_by = (requested_by or "a person") if by_person else None
    escalation.request_note = note if by_person else None

    deadline = severity_service.response_due_at(
        org, severity, at, incident.service_names
    ) or at + first_step_delay(policy)
    # A start that ran late (the worker was down) still gives the first step a moment to answer.
    deadline = max(deadline, now + MIN_ACK_WINDOW)
    raise_said, raise_cause = (
        _raise_to_level(session, incident, raised_by) if trigger == "severity_raised" else ("", None)
    )
    reason = {
        "created": f"{incident.ref} opened at {opened_at}, since {_moved(org, opened_at, severity)} to "
        f"{severity}"
        if opened_at and opened_at != severity
        else f"{incident.ref} opened at {severity}",
        "severity_raised": f"severity {raise_said}",
        REQUESTED_BY_AUTOMATION: "page requested by automation" + _asked_by_rule(rule, merged_from),
        REQUESTED_BY_PERSON: f"page requested by {requested_by or 'a person'}"
        + (f": {note}" if note else ""),
        "snooze_ended": "a snoozed alert still fires (reminder)",
    }.get(reason_trigger, reason_trigger)
    cause = _joined(
        raise_cause, _run_cause(session, incident, escalation), _acknowledger_cause(incident, trigger)
    )
    _page_until_reached(
        session, context, incident, policy, escalation, reason=reason, ack_by=deadline, cause=cause
    )
    _schedule_check(session, incident, escalation, deadline)
    return {"policy": policy.name, "mode": mode, "cycle": escalation.cycle, "deadline": deadline.isoformat()}


def _moved(org: OrgConfig, before: str, after: str) -> str:
    """ "raised" or "lowered": an incident opened at P1 and lowered to P2 before its first page was not
    raised. A level the org file no longer has reads as a raise, as before."""
    if before in org.severity_ids and after in org.severity_ids:
        return "lowered" if org.severity_rank(after) > org.severity_rank(before) else "raised"
    return "raised"


def _raise_to_level(session: Session, incident: Incident, raised_by: str | None) -> tuple[str, Cause | None]:
    """What brought the incident to the level a raise's job finds it at ("raised to P1 by carol"), and the
    cause its pages carry. Changes made before the worker ran are all on the timeline, and any raise's job
    may be the one that runs first, so the words come from the timeline, not from the job: a level someone
    else lowered it to since the latest raise was raised to by nobody ("raised to P0 by carol, since lowered
    to P1 by dave"), and its pages skip nobody as its raiser. A raise and lowerings all by one person raised
    it to this level (P2, raised to P0 and lowered to P1 by carol: raised to P1 by carol)."""
    severity = incident.severity
    changes = session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident.id, TimelineEntry.kind == TimelineKind.severity_change)
        .order_by(TimelineEntry.seq.desc())
    )
    lowered_by: list[str] = []  # newest first: the first one set the level it is at
    for change in changes:
        facts = change.data or {}
        if facts.get("direction") != "raised":
            lowered_by.append(change.performer)
            continue
        raiser = change.performer
        if set(lowered_by) <= {raiser}:
            said = f"raised to {severity} by {raiser}"
            person = _by_person(raiser)
            return said, _engaged(said, person, f"the one who raised it to {severity}") if person else None
        said = f"raised to {facts.get('to')} by {raiser}, since lowered to {severity} by {lowered_by[0]}"
        return said, Cause(said) if _by_person(raiser) or _by_person(lowered_by[0]) else None
    # No raise on the timeline (rows written otherwise): the job's own word.
    said = f"raised to {severity}" + (f" by {raised_by}" if raised_by else "")
    person = _by_person(raised_by)
    return said, _engaged(said, person, f"the one who raised it to {severity}") if person else None


def _raise_overtaken(
    session: Session, org: OrgConfig, incident: Incident, *, raised_to: str | None, raised_by: str | None
) -> dict[str, Any] | None:
    """What a raise's job does when the incident is now at or below the level its own escalation already
    pages at (the most severe of its own runs still escalating): nothing. Paging would only restart that run
    at a level no higher than it runs at (a P1 raised to P0 and lowered to P2 before the worker ran, re-paged
    as a P2); it goes on as it was, in the mode the lowering set. A raise above that level was never paged
    for: it was lowered again before it went out, and the timeline says so. One at or below it was paged for
    by that run (the opening's job found the incident raised already, or another raise's job ran first), and
    there is nothing to say. None: the incident is above every run of its own, or none runs: the raise pages.
    With none running because the incident is acknowledged or in monitoring, ``_raise_undone`` decides.
    ``raised_to``: the level the raise went to (from its job; else the latest raise on the timeline)."""
    known = set(org.severity_ids)
    own = [
        escalation
        for escalation in session.scalars(
            select(Escalation)
            .where(Escalation.incident_id == incident.id, Escalation.state == EscalationState.active)
            .order_by(Escalation.id)
        )
        # A run a rule or a person asked for goes on beside whatever the raise pages: not the incident's own.
        if _origin(escalation) == EscalationOrigin.incident and escalation.severity in known
    ]
    if incident.severity not in known:
        return None
    if not own:
        if incident.acknowledged_at is None and incident.status != IncidentStatus.monitoring:
            return None
        return _raise_undone(session, org, incident, raised_to=raised_to, raised_by=raised_by)
    rank = org.severity_rank
    level = min((escalation.severity for escalation in own), key=rank)
    if rank(incident.severity) < rank(level):
        return None
    running = [escalation for escalation in own if escalation.severity == level]
    policies = ", ".join(escalation.policy for escalation in running)
    changes = _severity_changes(session, incident)
    if raised_to is None:  # a job queued before raises said their level
        raised_to = next((str(f.get("to")) for f, _ in changes if f.get("direction") == "raised"), None)
    if raised_to is None or raised_to not in known or rank(raised_to) >= rank(level):
        return {"skipped": f"{policies} already escalating at {level}"}
    lowered = _lowered_since(incident, changes)
    goes_on = "; ".join(
        f"{escalation.policy} goes on as it was, at step {escalation.step}"
        + (f", next deadline {escalation.next_check_at:%H:%M:%S} UTC" if escalation.next_check_at else "")
        for escalation in running
    )
    raise_said = f"the raise to {raised_to}" + (f" by {raised_by}" if raised_by else "")
    _timeline(
        session,
        incident,
        f"Page for {raise_said} not sent: {incident.ref} was lowered again{lowered} before it went out, and "
        f"its escalation pages at {level} already: {goes_on}",
        kind=TimelineKind.automation,
        data={
            "raised_to": raised_to,
            "raised_by": raised_by,
            "severity": incident.severity,
            "paging_at": level,
            "policies": [escalation.policy for escalation in running],
        },
    )
    return {
        "skipped": f"{raise_said} was lowered again to {incident.severity}; {policies} goes on at {level}"
    }


def _severity_changes(session: Session, incident: Incident) -> list[tuple[dict[str, Any], str]]:
    """The incident's severity changes (their facts and who made them), newest first."""
    return [
        (entry.data or {}, entry.performer)
        for entry in session.scalars(
            select(TimelineEntry)
            .where(
                TimelineEntry.incident_id == incident.id, TimelineEntry.kind == TimelineKind.severity_change
            )
            .order_by(TimelineEntry.seq.desc())
        )
    ]


def _lowered_since(incident: Incident, changes: list[tuple[dict[str, Any], str]]) -> str:
    """ " (to P1 by erin)", or " (to P1 by erin; P2 now)": the newest lowering, which came after the raise
    (the incident fell from the raise's level to where it is); "" when the timeline has none."""
    lowering = next(((f, by) for f, by in changes if f.get("direction") == "lowered"), None)
    if lowering is None:
        return ""
    lowered_to = str(lowering[0].get("to"))
    return f" (to {lowered_to} by {lowering[1]}" + (
        f"; {incident.severity} now)" if lowered_to != incident.severity else ")"
    )


def _raise_undone(
    session: Session, org: OrgConfig, incident: Incident, *, raised_to: str | None, raised_by: str | None
) -> dict[str, Any] | None:
    """What a raise's job does on an incident acknowledged or in monitoring, where no escalation of its own
    runs to compare with (``_raise_overtaken``), when the incident is now at or below the level the raise
    went from: nothing. It was lowered again before the page went out, and paging would only page that
    level once (a P1 carol acknowledged, raised to P0 and lowered back to P1 before the worker ran, paged
    again as a P1). The timeline says so. None: the incident stands above where the raise started (P2 raised
    to P0 and lowered to P1 is a raise still), or the timeline has no such raise: the raise pages."""
    known = set(org.severity_ids)
    changes = _severity_changes(session, incident)
    # This job's raise: the newest to its level (by its raiser); a job queued before raises said their level
    # takes the newest raise.
    raise_facts = next(
        (
            facts
            for facts, by in changes
            if facts.get("direction") == "raised"
            and (raised_to is None or str(facts.get("to")) == raised_to)
            and (raised_by is None or by == raised_by)
        ),
        None,
    )
    if raise_facts is None:
        return None
    raised_from, raised_to = str(raise_facts.get("from")), str(raise_facts.get("to"))
    rank = org.severity_rank
    if raised_from not in known or rank(incident.severity) < rank(raised_from):
        return None
    held = (
        f"{incident.acknowledged_by} acknowledged it"
        if incident.acknowledged_at is not None
        else "it is in monitoring"
    )
    raise_said = f"the raise to {raised_to}" + (f" by {raised_by}" if raised_by else "")
    lowered = _lowered_since(incident, changes)
    _timeline(
        session,
        incident,
        f"Page for {raise_said} not sent: {incident.ref} was lowered again{lowered} before it went out, "
        f"to no higher than the {raised_from} it was raised from, and {held}",
        kind=TimelineKind.automation,
        data={
            "raised_to": raised_to,
            "raised_by": raised_by,
            "raised_from": raised_from,
            "severity": incident.severity,
            "acknowledged_by": incident.acknowledged_by,
            "status": incident.status.value,
        },
    )
    return {"skipped": f"{raise_said} was lowered again to {incident.severity}; {held}"}


def _no_policy_noted(session: Session, incident: Incident) -> bool:
    """Whether the timeline says already that no policy covers the incident's level for its services, with
    no severity change since: the opening's job and a raise's before it ran find the same level."""
    entries = session.scalars(
        select(TimelineEntry)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind.in_([TimelineKind.severity_change, TimelineKind.automation]),
        )
        .order_by(TimelineEntry.seq.desc())
    )
    for entry in entries:
        if entry.kind == TimelineKind.severity_change:
            return False
        facts = entry.data or {}
        if (
            entry.performer == PERFORMER
            and entry.action.startswith(_NO_POLICY)
            and facts.get("severity") == incident.severity
            and facts.get("services") == incident.service_names
        ):
            return True
    return False


def _acknowledger_cause(incident: Incident, trigger: str) -> Cause | None:
    """A page of an acknowledged incident (a raise, a person asking for more hands) is not sent to whoever
    acknowledged it: they are on it. A raise's step counts them as reached (it informs, and they are one of
    its people); a request for more hands hands on past them, as past the one who asked."""
    by = _by_person(incident.acknowledged_by) if incident.acknowledged_at is not None else None
    if by is None or trigger not in ("severity_raised", REQUESTED_BY_PERSON):
        return None
    did = "the one who acknowledged it"
    return _engaged(None, by, did) if trigger == "severity_raised" else Cause(skip={by: did})


def _merge_entry(session: Session, incident: Incident, policy: str) -> TimelineEntry | None:
    """The incident's latest timeline entry saying a merge brought its run of ``policy`` here (``data``:
    ``merged``, the merged incident's id, ``policy``, the run's name then, and ``by``, who merged it, when a
    person did). A run a reload's rename handed on to ``policy`` is the run the merge brought under its old
    name (``_hand_over_gone_policy``)."""
    seen: set[str] = set()
    while policy not in seen:
        seen.add(policy)
        entries = session.scalars(
            select(TimelineEntry)
            .where(
                TimelineEntry.incident_id == incident.id,
                TimelineEntry.kind == TimelineKind.page,
                TimelineEntry.performer == PERFORMER,
                TimelineEntry.data["policy"].as_string() == policy,
            )
            .order_by(TimelineEntry.seq.desc())
        )
        found = next((entry for entry in entries if isinstance((entry.data or {}).get("merged"), int)), None)
        if found is not None:
            return found
        handovers = session.scalars(
            select(TimelineEntry)
            .where(
                TimelineEntry.incident_id == incident.id,
                TimelineEntry.kind == TimelineKind.automation,
                TimelineEntry.performer == PERFORMER,
                TimelineEntry.data["to_policy"].as_string() == policy,
            )
            .order_by(TimelineEntry.seq.desc())
        )
        # Only a handover that started ``policy``'s run ("takes over from step …"), not one to a run already
        # there.
        took = next((entry for entry in handovers if "step" in (entry.data or {})), None)
        previous = (took.data or {}).get("policy") if took is not None else None
        if not isinstance(previous, str):
            return None
        policy = previous
    return None


def _carried_from(session: Session, incident: Incident, escalation: Escalation) -> Escalation | None:
    """The run on the merged incident that a merge carried on as ``escalation`` (its pages until then are
    that run's, on that incident); None for a run no merge brought."""
    if _origin(escalation) != EscalationOrigin.merge:
        return None
    entry = _merge_entry(session, incident, escalation.policy)
    facts = (entry.data or {}) if entry is not None else {}
    if not isinstance(facts.get("merged"), int) or not isinstance(facts.get("policy"), str):
        return None
    return session.scalar(
        select(Escalation).where(
            Escalation.incident_id == facts["merged"], Escalation.policy == facts["policy"]
        )
    )


def _run_escalation_ids(session: Session, incident: Incident, escalation: Escalation) -> list[int]:
    """``escalation`` and the runs merges carried on as it (INC-1 merged into INC-2, since into INC-3): the
    escalations whose pages are this run's."""
    ids = [escalation.id]
    current: Escalation | None = escalation
    where = incident
    while current is not None:
        source = _carried_from(session, where, current)
        if source is None or source.id in ids:
            break
        ids.append(source.id)
        found = session.get(Incident, source.incident_id)
        if found is None:
            break
        current, where = source, found
    return ids


def _run_step_pages(
    session: Session, incident: Incident, escalation: Escalation, cycle: int, step: int
) -> list[tuple[Page, DeliveryStatus | None, str | None]]:
    """The pages of one step of one pass of ``escalation`` (``_step_pages``); for a step a merge carried here
    before it moved on, the pages the merged incident's run sent for it."""
    for _ in range(10):  # a chain of merges, each carrying the step on
        rows = _step_pages(session, escalation.id, cycle, step)
        source = _carried_from(session, incident, escalation) if not rows else None
        if (
            source is None
            or source.step != step
            or source.cycle - source.first_cycle != cycle - escalation.first_cycle
        ):
            return rows
        found = session.get(Incident, source.incident_id)
        if found is None:
            return rows
        incident, escalation, cycle = found, source, source.cycle
    return []


def _run_cause(session: Session, incident: Incident, escalation: Escalation) -> Cause | None:
    """What a run's every page carries beyond its step, and whom it skips: a person's run skips the person
    who asked for it (its pages say who asked, ``page_context``); a run a merge brought says so and skips
    whoever merged."""
    origin = _origin(escalation)
    if origin == EscalationOrigin.person and escalation.requested_by:
        return Cause(skip={escalation.requested_by: "the one who asked for this page"})
    if origin != EscalationOrigin.merge:
        return None
    entry = _merge_entry(session, incident, escalation.policy)
    if entry is None:
        return None
    facts = entry.data or {}
    source = f"INC-{facts['merged']}"
    by = _by_person(facts.get("by"))
    text = f"it came with the merge of {source} into {incident.ref}" + (f" by {by}" if by else "")
    return _engaged(text, by, f"the one who merged {source} into {incident.ref}") if by else Cause(text)


def _asked_by_rule(rule: str | None, merged_from: int | None) -> str:
    """Which rule asked for a page, and the incident a merge carried it from: " for rule db-down, carried
    over by the merge of INC-4"."""
    return (f" for rule {rule}" if rule else "") + (
        f", carried over by the merge of INC-{merged_from}" if merged_from is not None else ""
    )


_ORIGIN_OF = {
    REQUESTED_BY_AUTOMATION: EscalationOrigin.rule,
    REQUESTED_BY_PERSON: EscalationOrigin.person,
}


def _origin(escalation: Escalation) -> EscalationOrigin:
    """What started the run; a row from before ``origin`` was kept is a person's if one asked, else the
    incident's own (a rule's run from then cannot be told apart)."""
    if escalation.origin:
        return EscalationOrigin(escalation.origin)
    return EscalationOrigin.person if escalation.requested_by else EscalationOrigin.incident


def _supersede_own_runs(session: Session, incident: Incident, policy: str) -> None:
    """A raise hands the incident's own paging over to ``policy``: its own run of any other policy stops.
    A run a rule's ``page`` or a person asked for goes on beside it (those people were asked for, whatever
    the level), so which of a raise and a rule's page the worker runs first changes nothing."""
    others = session.scalars(
        select(Escalation)
        .where(
            Escalation.incident_id == incident.id,
            # One held while the incident is in monitoring too: it would otherwise page again on a return.
            Escalation.state.in_([EscalationState.active, EscalationState.monitoring]),
            Escalation.policy != policy,
        )
        .order_by(Escalation.id)
        .with_for_update()
    )
    for other in others:
        if _origin(other) != EscalationOrigin.incident:
            continue
        other.state = EscalationState.superseded
        other.next_check_at = None
        other.updated_at = utcnow()
        job_service.cancel(session, idempotency_key=_check_key(incident.id, other))


def first_step_delay(policy: EscalationPolicyConfig) -> timedelta:
    """The time the people of ``policy``'s first step have to answer: its first deadline when the severity
    sets no response target, and how long after a snooze's reminder another one pages nobody."""
    return policy.steps[0].delay if policy.steps else timedelta(minutes=15)


def _last_reminder(session: Session, incident_id: int, policy: str) -> datetime | None:
    """When the latest snooze reminder that paged ``policy`` for the incident was asked for (its job's
    ``at``). Read under the incident's lock, so a reminder committed by another worker is seen."""
    payloads = session.scalars(
        select(Job.payload).where(
            Job.kind == START_KIND,
            Job.incident_id == incident_id,
            Job.status == JobStatus.done,
            Job.payload["trigger"].as_string() == "snooze_ended",
            Job.result["policy"].as_string() == policy,
        )
    )
    return max((datetime.fromisoformat(p["at"]) for p in payloads if p.get("at")), default=None)


def _opening_start_not_run(session: Session, incident_id: int) -> Job | None:
    """The job that pages for the incident's opening, while it has not run yet (pending, or waiting on the
    incident's lock this job holds)."""
    return session.scalar(
        select(Job).where(
            Job.idempotency_key == _opening_key(incident_id),
            Job.status.in_([JobStatus.pending, JobStatus.running]),
        )
    )


def note_nobody_paged(session: Session, org: OrgConfig, incident: Incident, at: datetime) -> None:
    """The severity pages nobody (P3): say so on the timeline, with when a response is due."""
    severity = incident.severity
    due = severity_service.response_due_at(org, severity, at, incident.service_names)
    level = org.severity(severity)
    _timeline(
        session,
        incident,
        # "by its severity": a rule's or a person's page may still go to a policy (said on its own line).
        f"Nobody paged for {severity}"
        + (f" ({level.name})" if level else "")
        + " by its severity: tracked as a ticket"
        + (f", response due {due:%Y-%m-%d %H:%M} UTC" if due else ""),
        kind=TimelineKind.automation,
        data={"severity": severity, "mode": "none", "response_due_at": due},
    )


def _check_key(incident_id: int, escalation: Escalation) -> str:
    return f"escalation.check:{incident_id}:{escalation.policy}:{escalation.cycle}:{escalation.step}"


def _schedule_check(session: Session, incident: Incident, escalation: Escalation, deadline: datetime) -> None:
    if incident.acknowledged_at is not None:
        # Paged because the severity went up after someone had already acknowledged: inform, no chase.
        escalation.state = EscalationState.acknowledged
        escalation.next_check_at = None
        return
    if incident.status == IncidentStatus.monitoring:
        # Paged while the fix is being watched (a person asked, a raise): held, as monitoring holds every run.
        escalation.state = EscalationState.monitoring
        escalation.next_check_at = None
        return
    escalation.next_check_at = deadline
    job_service.enqueue(
        session,
        kind=CHECK_KIND,
        payload={"escalation_id": escalation.id, "cycle": escalation.cycle, "step": escalation.step},
        run_at=deadline,
        idempotency_key=_check_key(incident.id, escalation),
        incident_id=incident.id,
    )


# --- paging a step --------------------------------------------------------------------------------


def _steps_now(policy: EscalationPolicyConfig, escalation: Escalation) -> list[int]:
    if escalation.mode == "all_hands":
        return list(range(1, len(policy.steps) + 1))
    return [escalation.step]


def _page_until_reached(
    session: Session,
    context: AppContext,
    incident: Incident,
    policy: EscalationPolicyConfig,
    escalation: Escalation,
    *,
    reason: str,
    ack_by: datetime,
    escalated: bool = False,
    cause: Cause | None = None,
) -> None:
    """Page the step the escalation is at. A step that reaches nobody (a gap in its schedule, a person with
    no way to page, only the person ``cause`` skips) hands on to the next one at once, in ``first_step`` mode
    too: waiting out its deadline would leave the incident with no one paged at all. The deadline stays the
    one the first step was given."""
    reached = _page_position(
        session,
        context,
        incident,
        policy,
        escalation,
        reason=reason,
        ack_by=ack_by,
        escalated=escalated,
        cause=cause,
    )
    while reached == 0 and escalation.mode != "all_hands" and escalation.step < len(policy.steps):
        skipped = escalation.step
        escalation.step += 1
        reached = _page_position(
            session,
            context,
            incident,
            policy,
            escalation,
            reason=f"step {skipped} reached nobody",
            ack_by=ack_by,
            escalated=True,
            cause=cause,
        )


def _page_position(
    session: Session,
    context: AppContext,
    incident: Incident,
    policy: EscalationPolicyConfig,
    escalation: Escalation,
    *,
    reason: str,
    ack_by: datetime | None,
    escalated: bool = False,
    cause: Cause | None = None,
) -> int:
    """Page the step(s) the escalation is at; returns how many people were reached."""
    now = utcnow()
    reached = 0
    for step_number in _steps_now(policy, escalation):
        step = policy.steps[step_number - 1]
        recipients = service.resolve_step(session, context.org, step, now)
        lines: list[str] = []
        for recipient in recipients:
            did = cause.skip.get(recipient.person.name) if cause is not None else None
            if did is not None:
                # Their own action caused this page: they know. Not sent, and it reaches nobody.
                lines.append(f"{recipient.person.name} ({recipient.via}) skipped as {did}")
                if cause is not None and recipient.person.name in cause.engaged:
                    reached += 1  # on it already: the step waits for its deadline with them
                continue
            channels, reachable = _page_person(
                session, context, incident, policy, escalation, step_number, recipient, now, ack_by, cause
            )
            reached += reachable
            if channels:
                lines.append(f"{recipient.person.name} ({recipient.via}) via {', '.join(channels)}")
        prefix = (
            f"Escalated to step {step_number} of {policy.name}"
            if escalated
            else f"Paged step {step_number} of {policy.name}"
        )
        if escalation.mode == "all_hands":
            prefix += " (all hands)"
        number = escalation.cycle - escalation.first_cycle + 1
        cycle = f", pass {number}" if number > 1 else ""
        if lines:
            action = f"{prefix}{cycle} ({reason}): " + "; ".join(lines)
        else:
            targets = ", ".join(t.describe() for t in step.targets)
            action = f"{prefix}{cycle} ({reason}): nobody to page ({targets}: no one to reach)"
        _timeline(
            session,
            incident,
            action,
            kind=TimelineKind.page,
            data={
                "policy": policy.name,
                "mode": escalation.mode,
                "cycle": escalation.cycle,
                "step": step_number,
                "people": [r.person.name for r in recipients],
            },
        )
    return reached


def page_key(incident_id: int, policy: str, cycle: int, step: int, person: str, rule: int) -> str:
    return f"page:{incident_id}:{policy}:{cycle}:{step}:{person}:{rule}"


def _page_person(
    session: Session,
    context: AppContext,
    incident: Incident,
    policy: EscalationPolicyConfig,
    escalation: Escalation,
    step: int,
    recipient: service.Recipient,
    now: datetime,
    ack_by: datetime | None,
    cause: Cause | None = None,
) -> tuple[list[str], bool]:
    """Create one page per notification rule; send the immediate ones, schedule the delayed ones. Returns
    what was done, and whether any of it can reach the person (a page refused at once reaches nobody)."""
    person = recipient.person
    described: list[str] = []
    reachable = False
    for rule in service.effective_rules(context.org, person):
        page = _new_page(
            session,
            incident.id,
            escalation,
            step,
            person.name,
            rule.index,
            channel=rule.channel,
            to=rule.to,
            via=recipient.via,
            created_at=now,
            send_at=now + rule.delay,
        )
        if page is None:
            continue  # a replay: already paged
        # A run a person asked for carries who asked and why: it is not held back for a page of another run
        # moments before, which did not say it. Within its own pass (all hands) one page is enough.
        earlier = _paged_moments_ago(
            session,
            incident,
            person.name,
            rule,
            now,
            within=escalation if escalation.requested_by is not None else None,
        )
        if earlier is not None:
            # The earlier page (and its delayed rules) reaches them already; this one only keeps the record.
            ago = (now - earlier.created_at).total_seconds()
            said = f"already paged for {incident.ref} by {_paged_by(earlier)} {ago:.1f}s ago, not sent again"
            page.status = PageStatus.duplicate
            page.delivery_id = earlier.delivery_id
            page.error = f"not sent: {person.name} {said}"
            session.add(page)
            described.append(f"{rule.channel}: {said}")
            reachable = True
            continue
        session.add(page)
        session.flush()
        if rule.delay > timedelta(0):
            described.append(_delay_page(session, incident, page, rule, {"page_id": page.id}))
            reachable = True
        elif _deliver(session, context, incident, page, ack_by, cause=cause):
            described.append(f"{rule.channel} to {notify_service.shown_address(rule.to)}")
            reachable = True
        else:
            described.append(
                f"{rule.channel} to {notify_service.shown_address(rule.to)} FAILED ({page.error})"
            )
    return described, reachable


def _delay_page(
    session: Session, incident: Incident, page: Page, rule: service.EffectiveRule, payload: dict[str, Any]
) -> str:
    """A delayed notification rule's page (stored, ``payload`` its job's): scheduled to go out after the
    rule's delay unless someone acknowledges first. On an incident acknowledged already (a page someone asked
    for, a raise) it would never go out (``send_delayed_page``), so it is cancelled now: no job waits for it,
    and neither the timeline nor ``oncall pages`` promises it. What the timeline says of it."""
    if incident.acknowledged_at is not None:
        page.status = PageStatus.cancelled
        return f"{rule.channel} after {_minutes(rule.delay)} skipped ({incident.ref} is acknowledged)"
    job_service.enqueue(
        session,
        kind=NOTIFY_KIND,
        payload=payload,
        run_at=page.send_at,
        idempotency_key=page.key,
        incident_id=incident.id,
    )
    return f"{rule.channel} in {_minutes(rule.delay)} unless acknowledged"


def _paged_by(page: Page) -> str:
    """What a page was part of, as a duplicate riding on it says: "step 2 of payments-escalation", or a page
    by hand ("a page by hand by alice")."""
    if page.escalation_id is None and page.policy == BY_HAND:
        return "a page " + page.via.removeprefix("paged ")  # via: "paged by hand by alice"
    return f"step {page.step} of {page.policy}"


def _paged_moments_ago(
    session: Session,
    incident: Incident,
    person: str,
    rule: service.EffectiveRule,
    now: datetime,
    *,
    within: Escalation | None = None,
) -> Page | None:
    """The page of ``person`` for the incident by this notification rule, at its address, made less than
    ``DUPLICATE_WINDOW`` ago and since the incident was last acknowledged, that reached or may still reach
    them (sent and not a dead letter, or a delayed rule waiting); None when there is none. ``within``: only
    a page of that escalation's pass now (another step of an all-hands page). The caller holds the incident's
    lock, which every paging job takes first, so two policies paging at once see each other's pages."""
    since = now - DUPLICATE_WINDOW
    if incident.acknowledged_at is not None:
        # Acknowledged since (a person now asks for more hands): that is a new request, not the same page.
        since = max(since, incident.acknowledged_at)
    statement = (
        select(Page, Delivery.status, Delivery.last_error)
        .outerjoin(Delivery, Delivery.id == Page.delivery_id)
        .where(
            Page.incident_id == incident.id,
            Page.person == person,
            Page.rule == rule.index,
            Page.channel == rule.channel,
            Page.to == rule.to,
            Page.created_at > since,
            Page.status.in_([PageStatus.sent, PageStatus.scheduled]),
        )
        .order_by(Page.id)
    )
    if within is not None:
        statement = statement.where(Page.escalation_id == within.id, Page.cycle == within.cycle)
    rows = session.execute(statement).all()
    return next(
        (page for page, status, error in rows if _unreachable_because(page, status, error) is None), None
    )


def _minutes(delay: timedelta) -> str:
    from warroom.durations import format_duration

    return format_duration(delay)


def _waited(delay: timedelta) -> str:
    """How long a step waited, as people count it: whole minutes from a minute on (the worker may page a
    second or so after a deadline, which made a 1-minute step read "59s")."""
    seconds = max(delay.total_seconds(), 0.0)
    return _minutes(
        timedelta(minutes=round(seconds / 60)) if seconds >= 50 else timedelta(seconds=round(seconds))
    )


def page_context(
    context: AppContext,
    incident: Incident,
    page: Page,
    ack_by: datetime | None,
    escalation: Escalation | None = None,
    note: str | None = None,
    cause: Cause | None = None,
) -> dict[str, Any]:
    """What the page template (notify's ``page``) sees besides ``incident``. ``note``: the why of a page of
    a person asked for by name (a policy's run keeps its own on ``escalation``); ``cause``: what else made
    this page ("raised to P0 by dana"). A page of an incident someone acknowledged (or in monitoring)
    chases nobody: it names who acknowledged and gives no acknowledge-by time."""
    org = context.org
    acknowledged = incident.acknowledged_at is not None
    if acknowledged or incident.status == IncidentStatus.monitoring:
        ack_by = None
    reason = f"{page.via} (step {page.step} of {page.policy})"
    if page.escalation_id is None and page.policy == BY_HAND:
        reason = page.via + (f": {note}" if note else "")  # "paged by hand by alice: replication lag"
    elif escalation is not None and escalation.requested_by:
        reason += f"; {escalation.requested_by} asked for this page" + (
            f": {escalation.request_note}" if escalation.request_note else ""
        )
    if cause is not None and cause.text:
        reason += f"; {cause.text}"
    level = org.severity(incident.severity)
    person = next((p for p in org.people if p.name == page.person), None)
    token = make_ack_token(
        context.settings.resolved_secret_key(), incident_id=incident.id, person=page.person
    )
    base = context.settings.base_url.rstrip("/")
    return {
        "incident_id": incident.ref,
        "incident_number": incident.id,
        "title": incident.title,
        "summary": incident.summary,
        "severity": incident.severity,
        "severity_name": level.name if level else incident.severity,
        "status": incident.status.value,
        "services": incident.service_names,
        "commander": incident.commander,
        "opened_at": incident.created_at.isoformat(),
        "response_due_at": (
            due.isoformat()
            if (
                due := severity_service.response_due_at(
                    org, incident.severity, incident.created_at, incident.service_names
                )
            )
            else None
        ),
        "person": page.person,
        "person_name": person.label if person else page.person,
        "via": page.via,
        "policy": page.policy,
        "step": page.step,
        "cycle": page.cycle,
        "ack_url": ack_url(base, token),
        "ack_by": f"{ack_by:%Y-%m-%d %H:%M} UTC" if ack_by else None,
        # The template says "needs a responder" unless someone acknowledged (then: by whom, and when).
        "acknowledged_by": incident.acknowledged_by if acknowledged else None,
        "acknowledged_at": (
            f"{incident.acknowledged_at:%Y-%m-%d %H:%M} UTC" if incident.acknowledged_at else None
        ),
        "reason": reason,
        "incident_url": f"{base}/api/v1/incidents/{incident.ref}",
    }


def _deliver(
    session: Session,
    context: AppContext,
    incident: Incident,
    page: Page,
    ack_by: datetime | None,
    note: str | None = None,
    *,
    cause: Cause | None = None,
) -> bool:
    """Hand the page to notification delivery (its own outbox job sends and retries). A page that
    delivery refuses (say, a webhook contact without a URL) is marked failed instead of blocking the
    rest of the step. ``note``: as for ``page_context``."""
    try:
        delivery = notify_service.send(
            session,
            channel=page.channel,
            to=page.to,
            template=PAGE_TEMPLATE,
            context=page_context(
                context,
                incident,
                page,
                ack_by,
                session.get(Escalation, page.escalation_id) if page.escalation_id else None,
                note,
                cause,
            ),
            incident_id=incident.id,
            idempotency_key=page.key,
        )
    except InvalidInput as exc:
        log.warning("page %s not sent: %s", page.key, exc.message)
        page.status = PageStatus.failed
        page.error = exc.message[:1000]
        return False
    page.status = PageStatus.sent
    page.sent_at = utcnow()
    page.delivery_id = delivery.id
    return True


def send_delayed_page(
    session: Session, context: AppContext, *, page_id: int, note: str | None = None
) -> dict[str, Any]:
    page = session.get(Page, page_id, with_for_update=True)
    if page is None or page.status != PageStatus.scheduled:
        return {"skipped": "not scheduled"}
    incident = incident_service.get_incident(session, page.incident_id, for_update=True)
    if incident.acknowledged_at is not None or not incident.status.is_open:
        page.status = PageStatus.cancelled
        return {"skipped": "acknowledged or closed"}
    escalation = session.get(Escalation, page.escalation_id) if page.escalation_id else None
    if escalation is not None and escalation.state == EscalationState.monitoring:
        page.status = PageStatus.cancelled  # held in monitoring: going back pages the step afresh
        return {"skipped": "monitoring"}
    delivered = _deliver(
        session,
        context,
        incident,
        page,
        escalation.next_check_at if escalation else None,
        note,
        cause=_run_cause(session, incident, escalation) if escalation is not None else None,
    )
    if not delivered:
        request_handover(session, page)  # it may have been the step's last hope
    outcome = "still unacknowledged" if delivered else f"FAILED: {page.error}"
    _timeline(
        session,
        incident,
        f"Paged {page.person} via {page.channel} to {notify_service.shown_address(page.to)} "
        f"(personal rule {page.rule + 1}, {_paged_by(page)}): {outcome}",
        kind=TimelineKind.page,
        data={"page": page.key},
    )
    return {"sent": page.key}


def page_person_by_hand(
    session: Session,
    context: AppContext,
    *,
    request_id: int,
    incident_id: int,
    person_name: str,
    requested_by: str,
    note: str | None,
    worker: str | None = None,
) -> dict[str, Any]:
    """Page a person asked for by name: a page by each of their notification rules, the delayed ones unless
    someone acknowledges first (on an incident acknowledged already, only the immediate ones). It is a
    person's deliberate call, with their why, so it is never held back as a duplicate of a page moments
    before (a policy's page right after it rides on it instead). Nothing escalates from it: it has no policy
    and no deadline. ``request_id`` (its job's) keys its pages, so a replayed job pages nobody twice.
    ``worker``: the name of the worker running it, which a page not sent names."""
    try:
        incident = incident_service.get_incident(session, incident_id, for_update=True)
    except NotFound:
        return {"skipped": "incident gone"}
    asked = f"Page of {person_name} requested by {requested_by}"
    if not incident.status.is_open:
        _timeline(
            session,
            incident,
            f"{asked} not sent: {incident.ref} is {incident.status.value}",
            kind=TimelineKind.automation,
            data={"person": person_name, "status": incident.status.value},
        )
        return {"skipped": f"incident is {incident.status.value}"}
    person = next((p for p in context.org.people if p.name == person_name), None)
    if person is None:
        # The process that took the request had them in its org file; this one's has not: a reload took them
        # out since, or this process's file is older than, or different from, that one (a reload of one
        # process only, ``kill -HUP``), and they never were in it.
        whose = f"the org file of the worker that ran it ({worker})" if worker else "the worker's org file"
        loaded = f"{context.org_loaded_at:%Y-%m-%d %H:%M:%S} UTC"
        why = (
            f"{whose}, loaded {loaded}, has no person {person_name}: it may be older than, or different "
            "from, the one the request was checked against; reload every process (warroom config reload) "
            "and page again"
        )
        log.warning("%s: %s not sent: %s", incident.ref, asked, why)
        _timeline(
            session,
            incident,
            f"{asked} not sent: {why}",
            kind=TimelineKind.automation,
            data={"person": person_name, **({"worker": worker} if worker else {})},
        )
        return {"skipped": "unknown person"}
    now = utcnow()
    described: list[str] = []
    keys: list[str] = []
    for rule in service.effective_rules(context.org, person):
        key = f"page:{incident.id}:by-hand:{request_id}:{person.name}:{rule.index}"
        if session.scalar(select(Page.id).where(Page.key == key)) is not None:
            continue  # a replay: already paged
        page = Page(
            key=key,
            incident_id=incident.id,
            escalation_id=None,
            policy=BY_HAND,
            cycle=0,
            step=0,
            person=person.name,
            rule=rule.index,
            channel=rule.channel,
            to=rule.to,
            via=f"paged by hand by {requested_by}",
            status=PageStatus.scheduled,
            created_at=now,
            send_at=now + rule.delay,
        )
        session.add(page)
        session.flush()
        keys.append(key)
        if rule.delay > timedelta(0):
            payload = {"page_id": page.id, **({"note": note} if note else {})}
            described.append(_delay_page(session, incident, page, rule, payload))
        elif _deliver(session, context, incident, page, None, note):
            described.append(f"{rule.channel} to {notify_service.shown_address(rule.to)}")
        else:
            described.append(
                f"{rule.channel} to {notify_service.shown_address(rule.to)} FAILED ({page.error})"
            )
    if not keys:
        return {"skipped": "already paged"}
    why = f" (requested by {requested_by}" + (f": {note})" if note else ")")
    _timeline(
        session,
        incident,
        f"Paged {person.name} by hand{why}: " + "; ".join(described),
        kind=TimelineKind.page,
        data={"person": person.name, "requested_by": requested_by, "note": note, "pages": keys},
    )
    return {"person": person.name, "pages": keys}


# --- escalating ------------------------------------------------------------------------------------


def _lock_escalation(session: Session, escalation_id: int) -> tuple[Escalation | None, Incident | None]:
    """The escalation and its incident, locked in the order acknowledging and paging take them: the incident
    first. A deadline's check that locked the escalation first deadlocked with an acknowledgement on
    PostgreSQL (the acknowledgement holds the incident, then stops its escalations)."""
    incident_id = session.scalar(select(Escalation.incident_id).where(Escalation.id == escalation_id))
    if incident_id is None:
        return None, None
    try:
        incident = incident_service.get_incident(session, incident_id, for_update=True)
    except NotFound:
        return None, None
    escalation = session.get(Escalation, escalation_id, with_for_update=True, populate_existing=True)
    return escalation, incident


def check_escalation(
    session: Session, context: AppContext, *, escalation_id: int, cycle: int, step: int
) -> dict[str, Any]:
    """At an ack deadline: stop if acknowledged or closed, else page the next step (or repeat)."""
    escalation, incident = _lock_escalation(session, escalation_id)
    if escalation is None or incident is None or escalation.state != EscalationState.active:
        return {"skipped": "not active"}
    if (escalation.cycle, escalation.step) != (cycle, step):
        return {"skipped": "stale check"}
    if incident.acknowledged_at is not None:
        escalation.state = EscalationState.acknowledged
        escalation.next_check_at = None
        return {"stopped": "acknowledged"}
    if not incident.status.is_open:
        escalation.state = EscalationState.resolved
        escalation.next_check_at = None
        return {"stopped": incident.status.value}
    if incident.status == IncidentStatus.monitoring:
        # Moving to monitoring holds the escalation (``stop_escalations``); a check that came anyway holds it.
        escalation.state = EscalationState.monitoring
        escalation.next_check_at = None
        return {"stopped": "monitoring"}
    try:
        policy = service.get_policy(context.org, escalation.policy)
    except NotFound:
        return _hand_over_gone_policy(session, context, incident, escalation)
    previous_deadline = escalation.next_check_at or utcnow()
    waited = previous_deadline - escalation.updated_at
    if escalation.mode == "escalate" and escalation.step < len(policy.steps):
        next_cycle, next_step = escalation.cycle, escalation.step + 1
    else:
        next_cycle, next_step = escalation.cycle + 1, 1
    now = utcnow()
    if next_cycle - escalation.first_cycle + 1 > 1 + policy.repeat:
        escalation.state = EscalationState.exhausted
        escalation.next_check_at = None
        escalation.updated_at = now
        _timeline(
            session,
            incident,
            f"Escalation of {policy.name} exhausted: nobody acknowledged after "
            f"{policy.repeat + 1} pass(es) through its steps",
            kind=TimelineKind.automation,
            data={"policy": policy.name, "passes": escalation.cycle - escalation.first_cycle + 1},
        )
        return {"stopped": "exhausted"}
    escalation.cycle, escalation.step = next_cycle, next_step
    escalation.updated_at = now
    return _page_after_deadline(
        session, context, incident, policy, escalation, deadline=previous_deadline, waited=waited, now=now
    )


def _page_after_deadline(
    session: Session,
    context: AppContext,
    incident: Incident,
    policy: EscalationPolicyConfig,
    escalation: Escalation,
    *,
    deadline: datetime,
    waited: timedelta,
    now: datetime,
) -> dict[str, Any]:
    """A deadline passed unacknowledged (``waited`` after the step before was paged): page the step the
    escalation is now at, and check again after its own delay."""
    cycle, step = escalation.cycle, escalation.step
    delay = policy.steps[step - 1].delay
    # Deadlines follow the schedule, not the worker's lateness; after a long outage restart from now.
    next_deadline = deadline + delay
    if next_deadline <= now:
        next_deadline = now + delay
    reason = f"not acknowledged within {_waited(waited)}"
    _page_until_reached(
        session,
        context,
        incident,
        policy,
        escalation,
        reason=reason,
        ack_by=next_deadline,
        escalated=True,
        cause=_run_cause(session, incident, escalation),
    )
    _schedule_check(session, incident, escalation, next_deadline)
    return {"policy": policy.name, "cycle": cycle, "step": step, "deadline": next_deadline.isoformat()}


# --- a policy gone from the org file ---------------------------------------------------------------


def _policy_now(org: OrgConfig, incident: Incident) -> tuple[EscalationPolicyConfig | None, str]:
    """The policy the incident would be paged with now (as ``start_paging`` picks it), and what it covers
    ("P1 on api"); None with why when there is none."""
    severity = incident.severity
    services = incident.service_names
    covers = f"{severity} on {', '.join(services)}" if services else severity
    if service.paging_mode(org, severity) == "none":
        return None, f"{severity} pages nobody"
    try:
        policy = service.policy_for_incident(org, severity, services)
    except NotFound:
        policy = None
    if policy is None:
        return None, f"no escalation policy covers {covers} now"
    return policy, covers


_RENAMED = "the same policy renamed"


def _successor(
    org: OrgConfig, incident: Incident, gone: Escalation
) -> tuple[EscalationPolicyConfig | None, str]:
    """The policy that takes over ``gone`` (whose policy the org file no longer has), and what it is to the
    incident: the same policy under a new name (it does what ``gone``'s did), else the incident's own policy
    now (``_policy_now``: "the policy for P1 on api now"); None with why when there is none."""
    renamed = _policy_doing(org, gone.policy_fingerprint)
    if renamed is not None and service.paging_mode(org, incident.severity) != "none":
        return service.get_policy(org, renamed), _RENAMED
    policy, covers = _policy_now(org, incident)
    return policy, (f"the policy for {covers} now" if policy is not None else covers)


def _next_step_of_successor(
    session: Session,
    org: OrgConfig,
    incident: Incident,
    policy: EscalationPolicyConfig,
    gone: Escalation,
    mode: PagingMode,
    now: datetime,
) -> int:
    """The step ``policy`` takes over ``gone`` at: the one after the step ``gone`` was at, when ``policy``'s
    step there pages only people that step paged (and who may still be reached), which is what a renamed
    policy does, so its next step is due and not its first again; else its first step, as nobody on it has
    been paged for this."""
    if mode != "escalate" or gone.mode != "escalate" or gone.step >= len(policy.steps):
        return 1
    # A step a merge carried here was paged on the merged incident, by the run carried on as ``gone``.
    rows = _run_step_pages(session, incident, gone, gone.cycle, gone.step)
    paged = {page.person for page, status, error in rows if _unreachable_because(page, status, error) is None}
    wanted = {r.person.name for r in service.resolve_step(session, org, policy.steps[gone.step - 1], now)}
    return gone.step + 1 if wanted and wanted <= paged else 1


def _hand_over_gone_policy(
    session: Session, context: AppContext, incident: Incident, gone: Escalation
) -> dict[str, Any]:
    """At a deadline of an escalation whose policy is no longer in the org file (a reload renamed or removed
    it), nobody having acknowledged: the policy the incident would be paged with now takes over
    (``_policy_now``), in an escalation of its own from a fresh pass (``_next_step_of_successor`` says from
    which step), and this one is superseded; if that policy already escalates the incident, it goes on as
    it is. With no policy for the incident now, the escalation stops (``policy_gone``). Either way the
    timeline says so. The caller holds the incident's lock, then ``gone``'s."""
    now = utcnow()
    previous_deadline = gone.next_check_at or now
    waited = previous_deadline - gone.updated_at
    taken = _hand_over(session, context, incident, gone, now, resuming=False)
    if not isinstance(taken, tuple):
        return taken
    policy, successor = taken
    return _page_after_deadline(
        session, context, incident, policy, successor, deadline=previous_deadline, waited=waited, now=now
    )


def _hand_over(
    session: Session,
    context: AppContext,
    incident: Incident,
    gone: Escalation,
    now: datetime,
    *,
    resuming: bool,
) -> tuple[EscalationPolicyConfig, Escalation] | dict[str, Any]:
    """Hand ``gone`` (whose policy the org file no longer has) over to its successor (``_successor``): the
    successor's escalation, active, at the step it takes over at, with the policy, for the caller to page;
    or what happened instead (stopped, or the successor already escalates), said in the timeline.
    ``resuming``: the incident left monitoring (``resume_escalations``), so no deadline passed: a renamed
    policy goes on from the step ``gone`` was held at (paged again, in a new pass), another from its first;
    else (a deadline, ``_hand_over_gone_policy``) ``_next_step_of_successor`` says which step is due."""
    org = context.org
    gone.next_check_at = None
    gone.updated_at = now
    left = f"policy {gone.policy!r} is no longer in the org file"
    policy, covers = _successor(org, incident, gone)
    if policy is None:
        silent = service.paging_mode(org, incident.severity) == "none"
        gone.state = EscalationState.silent if silent else EscalationState.policy_gone
        log.warning("%s: escalation stopped: %s and %s", incident.ref, left, covers)
        hint = (
            ""
            if silent
            else "; page a policy by hand, or give the service an escalation_policy (or map the severity in "
            "severity_policies) and reload"
        )
        _timeline(
            session,
            incident,
            f"Escalation stopped: {left}, and {covers}, so nobody more is paged for it{hint}",
            kind=TimelineKind.automation,
            data={"policy": gone.policy, "reason": gone.state.value},
        )
        return {"stopped": "policy gone"}
    gone.state = EscalationState.superseded
    successor = session.scalar(
        select(Escalation)
        .where(Escalation.incident_id == incident.id, Escalation.policy == policy.name)
        .with_for_update()
    )
    data = {"policy": gone.policy, "to_policy": policy.name}
    # Held too (resuming): it goes on by itself, as every run held on the incident does.
    running = [EscalationState.active] + ([EscalationState.monitoring] if resuming else [])
    if successor is not None and successor.state in running:
        _timeline(
            session,
            incident,
            f"Escalation handed over: {left}; {policy.name}, {covers}, already escalates this incident",
            kind=TimelineKind.automation,
            data=data,
        )
        return {"superseded_by": policy.name}
    mode = service.paging_mode(org, incident.severity)
    if resuming:
        step = min(max(gone.step, 1), max(len(policy.steps), 1)) if covers == _RENAMED else 1
    else:
        step = _next_step_of_successor(session, org, incident, policy, gone, mode, now)
    if successor is None:
        successor = Escalation(
            incident_id=incident.id,
            policy=policy.name,
            policy_fingerprint=policy.fingerprint,
            cycle=1,
            started_at=now,
        )
        session.add(successor)
    else:
        successor.cycle += 1  # page keys stay unique; the repeat count starts afresh
    successor.first_cycle = successor.cycle
    # The same policy renamed goes on as what it was (a rule's run stays one); else the incident's own takes
    # over.
    successor.origin = _origin(gone) if covers == _RENAMED else EscalationOrigin.incident
    successor.step = step
    successor.mode = mode
    successor.severity = incident.severity
    successor.state = EscalationState.active
    successor.updated_at = now
    session.flush()
    _timeline(
        session,
        incident,
        f"Escalation handed over: {left}; {policy.name}, {covers}, takes over from step {step}",
        kind=TimelineKind.automation,
        data={**data, "step": step},
    )
    return policy, successor


def escalations_losing_policy(session: Session, org: OrgConfig) -> list[str]:
    """Before a reload to ``org``: the escalations running now whose policy ``org`` no longer has, one warning
    per policy naming its incidents and what their next deadline will do (``_hand_over_gone_policy``)."""
    rows = session.execute(
        select(Escalation, Incident)
        .join(Incident, Incident.id == Escalation.incident_id)
        .where(Escalation.state == EscalationState.active)
        .order_by(Escalation.policy, Escalation.incident_id)
    ).all()
    lost: dict[str, list[str]] = {}
    for escalation, incident in rows:
        try:
            service.get_policy(org, escalation.policy)
            continue
        except NotFound:
            pass
        policy, covers = _successor(org, incident, escalation)
        renamed = f" ({_RENAMED})" if covers == _RENAMED else ""
        then = f"{policy.name} takes over{renamed}" if policy is not None else f"it stops ({covers})"
        lost.setdefault(escalation.policy, []).append(f"{incident.ref} ({incident.severity}): {then}")
    return [
        f"escalation policy {name!r} is not in the new file but escalates {len(items)} unacknowledged "
        f"incident{'s' if len(items) > 1 else ''}; at the next deadline, " + "; ".join(items)
        for name, items in lost.items()
    ]


# --- handing on a step no one on it can be reached by ---------------------------------------------------


def request_handover(session: Session, page: Page) -> Job | None:
    """``page`` will reach nobody (its delivery became a dead letter, or a delayed rule was refused): enqueue
    a look at its step, in the caller's transaction. Each such page enqueues its own look, and the look
    enqueued with the last of a step's pages to fail sees every other (committed before it ran)."""
    if page.escalation_id is None:
        return None
    return job_service.enqueue(
        session,
        kind=HANDOVER_KIND,
        payload={
            "escalation_id": page.escalation_id,
            "cycle": page.cycle,
            "step": page.step,
            "page_id": page.id,
        },
        incident_id=page.incident_id,
    )


def _step_pages(
    session: Session, escalation_id: int, cycle: int, step: int
) -> list[tuple[Page, DeliveryStatus | None, str | None]]:
    """The pages of one step of one pass, in order, each with its delivery's status and last error."""
    rows = session.execute(
        select(Page, Delivery.status, Delivery.last_error)
        .outerjoin(Delivery, Delivery.id == Page.delivery_id)
        .where(Page.escalation_id == escalation_id, Page.cycle == cycle, Page.step == step)
        .order_by(Page.id)
    ).all()
    return [(page, status, error) for page, status, error in rows]


def _unreachable_because(page: Page, status: DeliveryStatus | None, error: str | None) -> str | None:
    """Why ``page`` cannot reach its person, or None while it may (delivered, on its way or retrying, or a
    delayed rule not due yet)."""
    if page.status == PageStatus.failed:
        return f"refused: {page.error}" if page.error else "refused"
    if page.status == PageStatus.cancelled:
        return "cancelled"
    if (
        page.status not in (PageStatus.sent, PageStatus.duplicate)
        or page.delivery_id is None
        or status is None
    ):
        # Scheduled; a delivery no longer on record, which counts as sent; or a duplicate of a delayed rule
        # (its step waits for the deadline)
        return None
    if status == DeliveryStatus.dead:
        return f"dead letter: {error}" if error else "dead letter"
    if status == DeliveryStatus.withdrawn:
        return "withdrawn"
    return None


def hand_over_unreachable_step(
    session: Session, context: AppContext, *, escalation_id: int, cycle: int, step: int
) -> dict[str, Any]:
    """A page of step ``step`` (pass ``cycle``) will reach nobody. If none of the step's pages reached anyone
    and none still may, page the next step now, under the step's deadline (at least a minute from now), as
    ``_page_until_reached`` does for a step refused when paged; at the last step, wait for the deadline,
    whose check repeats the policy or ends it as it would have.

    Nothing if the incident was acknowledged or closed, or the escalation moved on or its deadline came:
    the locks, taken in the deadline's check's order (``_lock_escalation``), order the two, and whichever
    comes second finds the step moved and does nothing."""
    escalation, incident = _lock_escalation(session, escalation_id)
    if escalation is None or incident is None or escalation.state != EscalationState.active:
        return {"skipped": "not active"}
    if (escalation.cycle, escalation.step) != (cycle, step):
        return {"skipped": "the escalation moved on"}
    if escalation.mode not in ("escalate", "first_step"):
        return {"skipped": f"{escalation.mode}: every step was paged at once"}
    now = utcnow()
    if escalation.next_check_at is not None and escalation.next_check_at <= now:
        # The deadline came first: its check (due, or running and waiting for this lock) escalates, and gives
        # the next step its own delay, not what little is left of this one.
        return {"skipped": "the deadline has come; its check escalates"}
    if incident.acknowledged_at is not None or not incident.status.is_open:
        return {"skipped": "acknowledged or closed"}
    try:
        policy = service.get_policy(context.org, escalation.policy)
    except NotFound:
        return {"skipped": "policy gone"}  # the deadline's check hands the escalation over (or stops it)
    rows = _step_pages(session, escalation.id, cycle, step)
    why: list[str] = []
    for page, status, error in rows:
        because = _unreachable_because(page, status, error)
        if because is None:
            return {"skipped": f"{page.person} may still be reached ({page.key})"}
        why.append(f"{page.person} via {page.channel} to {notify_service.shown_address(page.to)} ({because})")
    if not why:
        return {"skipped": "the step paged nobody"}
    number = escalation.cycle - escalation.first_cycle + 1
    pass_text = f", pass {number}" if number > 1 else ""
    unreached = f"No one on step {step} of {policy.name}{pass_text} could be reached: " + "; ".join(why)
    marker = f"{escalation.id}:{cycle}:{step}"
    data = {"policy": policy.name, "cycle": cycle, "step": step, "unreachable": marker}
    deadline = max(escalation.next_check_at or now, now + MIN_ACK_WINDOW)
    if step >= len(policy.steps):
        # As when the last step is refused when paged: no step to hand on to, so the deadline stands. Said
        # once, though every page that failed last at the same moment looks.
        said = session.scalar(
            select(TimelineEntry.id)
            .where(
                TimelineEntry.incident_id == incident.id,
                TimelineEntry.kind == TimelineKind.automation,
                TimelineEntry.data["unreachable"].as_string() == marker,
            )
            .limit(1)
        )
        if said is not None:
            return {"skipped": "already said"}
        ends = escalation.cycle + 1 - escalation.first_cycle + 1 > 1 + policy.repeat
        then = "ends (exhausted)" if ends else f"pages step 1 again (pass {number + 1})"
        _timeline(
            session,
            incident,
            f"{unreached}; it is the last step, so the escalation waits for its deadline "
            f"({deadline:%Y-%m-%d %H:%M} UTC), then {then}",
            kind=TimelineKind.automation,
            data={**data, "deadline": deadline.isoformat()},
        )
        return {"waits": deadline.isoformat(), "step": step}
    _timeline(
        session,
        incident,
        f"{unreached}; escalating to step {step + 1}",
        kind=TimelineKind.automation,
        data={**data, "to_step": step + 1},
    )
    job_service.cancel(session, idempotency_key=_check_key(incident.id, escalation))
    escalation.step = step + 1
    escalation.updated_at = now
    _page_until_reached(
        session,
        context,
        incident,
        policy,
        escalation,
        reason=f"no one on step {step} could be reached",
        ack_by=deadline,
        escalated=True,
        cause=_run_cause(session, incident, escalation),
    )
    _schedule_check(session, incident, escalation, deadline)
    return {
        "policy": policy.name,
        "cycle": escalation.cycle,
        "step": escalation.step,
        "deadline": deadline.isoformat(),
    }


# --- acknowledging from a page ------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkTarget:
    """What an acknowledge link acts on now: ``incident``, the one the page was for or, when that was merged
    since, the one merges took it into (its alerts and pages are there); ``paged_for`` is then the one the
    page named."""

    incident: Incident
    claim: AckClaim
    paged_for: Incident | None = None

    @property
    def shown_title(self) -> str:
        """The title to show with the link: the merged-into incident's, unless it is private and the page's
        was not (as the merge's note leaves it off the public incident's record)."""
        if self.paged_for is not None and self.incident.is_private and not self.paged_for.is_private:
            return self.paged_for.title
        return self.incident.title


def resolved_by(session: Session, incident: Incident) -> str | None:
    """Who last resolved the incident: the timeline says (the incident keeps only when)."""
    moves = session.scalars(
        select(TimelineEntry)
        .where(TimelineEntry.incident_id == incident.id, TimelineEntry.kind == TimelineKind.status_change)
        .order_by(TimelineEntry.seq.desc())
    )
    return next((move.performer for move in moves if (move.data or {}).get("to") == "resolved"), None)


def _link_target(session: Session, claim: AckClaim, *, for_update: bool) -> LinkTarget:
    """``for_update``: lock the incident acted on only (a merged one is not changed)."""
    incident = incident_service.get_incident(session, claim.incident_id)
    chain = incident_service.merge_chain(session, incident)
    acted_on = chain[-1] if chain else incident
    if for_update:
        acted_on = incident_service.get_incident(session, acted_on.id, for_update=True)
    return LinkTarget(acted_on, claim, paged_for=incident if chain else None)


def incident_of_link(session: Session, *, key: bytes, token: str) -> LinkTarget:
    """The incident a valid acknowledge link is for (or merged into since), and its claim; changes nothing."""
    return _link_target(session, verify_ack_token(key, token), for_update=False)


def acknowledge_from_link(session: Session, *, key: bytes, token: str) -> tuple[LinkTarget, bool]:
    """Acknowledge as the person the link was made for; returns what it acknowledged and whether it already
    was. A link from a page for an incident merged since acknowledges the one it was merged into: the pages
    that chase its people now are that one's."""
    target = _link_target(session, verify_ack_token(key, token), for_update=True)
    incident, person = target.incident, target.claim.person
    already = incident.acknowledged_at is not None
    incident_service.acknowledge(session, ref=incident.id, performer=person)
    if target.paged_for is not None and not already:
        incident_service.append_timeline(
            session,
            incident,
            performer=person,
            kind=TimelineKind.note,
            action=f"{person} acknowledged with the link of a page for {target.paged_for.ref}, which was "
            "merged into this incident",
            data={"paged_for": target.paged_for.id},
        )
    return target, already


def _merged_from(session: Session, incident: Incident, escalation: Escalation) -> str | None:
    if _origin(escalation) != EscalationOrigin.merge:
        return None
    entry = _merge_entry(session, incident, escalation.policy)
    return f"INC-{(entry.data or {})['merged']}" if entry is not None else None


def incident_paging(session: Session, *, ref: str, whole_addresses: bool = False) -> IncidentPaging:
    """The incident's escalations and pages. A page's URL address (a person's own hook, a credential) is
    shortened to its host unless ``whole_addresses`` (admins, who read the org file anyway), as the
    notifications API does; the page keeps it whole."""
    incident = incident_service.get_incident(session, ref)
    escalations = session.scalars(
        select(Escalation).where(Escalation.incident_id == incident.id).order_by(Escalation.id)
    )
    rows = session.execute(
        select(Page, Delivery.status, Delivery.last_error)
        .outerjoin(Delivery, Delivery.id == Page.delivery_id)
        .where(Page.incident_id == incident.id)
        .order_by(Page.id)
    ).all()
    # "sent" on a page means it was handed to delivery; the delivery says whether it went out.
    pages = [
        _page_read(page, str(status) if status else None, page.error or last_error, whole_addresses)
        for page, status, last_error in rows
    ]
    return IncidentPaging(
        incident=incident.ref,
        escalations=[
            EscalationRead.model_validate(e).model_copy(
                update={"origin": _origin(e).value, "merged_from": _merged_from(session, incident, e)}
            )
            for e in escalations
        ],
        pages=pages,
    )


def _page_read(page: Page, delivery_status: str | None, error: str | None, whole_addresses: bool) -> PageRead:
    shown = page.to if whole_addresses else notify_service.shown_recipient(page.to)
    if error and shown != page.to:
        error = error.replace(page.to, shown)
    return PageRead.model_validate(page).model_copy(
        update={"delivery_status": delivery_status, "error": error, "to": shown}
    )


# --- job handlers ---------------------------------------------------------------------------


@job_handler(START_KIND)
def _start_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    payload = job.payload
    return start_paging(
        session,
        context,
        incident_id=int(payload["incident_id"]),
        trigger=str(payload.get("trigger", "created")),
        policy_name=payload.get("policy"),
        at=datetime.fromisoformat(payload["at"]) if payload.get("at") else utcnow(),
        opened_at=payload.get("severity"),
        requested_by=payload.get("requested_by"),
        note=payload.get("note"),
        rule=payload.get("rule"),
        fingerprint=payload.get("fingerprint"),
        merged_from=int(payload["merged_from"]) if payload.get("merged_from") is not None else None,
        raised_by=payload.get("raised_by"),
        raised_to=payload.get("raised_to"),
    )


@job_handler(RESUME_KIND)
def _resume_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    payload = job.payload
    return resume_escalations(
        session,
        context,
        incident_id=int(payload["incident_id"]),
        performer=str(payload.get("performer") or PERFORMER),
        merged_from=payload["merged"] if isinstance(payload.get("merged"), int) else None,
    )


@job_handler(CHECK_KIND)
def _check_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    payload = job.payload
    return check_escalation(
        session,
        context,
        escalation_id=int(payload["escalation_id"]),
        cycle=int(payload["cycle"]),
        step=int(payload["step"]),
    )


@job_handler(HANDOVER_KIND)
def _handover_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    payload = job.payload
    return hand_over_unreachable_step(
        session,
        context,
        escalation_id=int(payload["escalation_id"]),
        cycle=int(payload["cycle"]),
        step=int(payload["step"]),
    )


@job_handler(NOTIFY_KIND)
def _notify_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    note = job.payload.get("note")
    return send_delayed_page(
        session, context, page_id=int(job.payload["page_id"]), note=str(note) if note else None
    )


@job_handler(PERSON_KIND)
def _person_job(context: AppContext, session: Session, job: Job) -> dict[str, Any] | None:
    payload = job.payload
    note = payload.get("note")
    return page_person_by_hand(
        session,
        context,
        request_id=job.id,
        incident_id=int(payload["incident_id"]),
        person_name=str(payload["person"]),
        requested_by=str(payload.get("requested_by") or "a person"),
        note=str(note) if note else None,
        worker=job.lease_owner,
    )
