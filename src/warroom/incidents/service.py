"""Incident operations: plain functions over a session. No HTTP here."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, inspect, select, text
from sqlalchemy.orm import Session, selectinload

from warroom.comms import service as comms_service
from warroom.db import parse_row_ref, utcnow
from warroom.errors import Conflict, InvalidInput, InvalidTransition, NotFound
from warroom.events import DomainEvent, publish
from warroom.fields import in_era
from warroom.incidents.models import (
    OPEN_STATUSES,
    TRANSITIONS,
    Communication,
    Incident,
    IncidentNumberMark,
    IncidentService,
    IncidentStatus,
    Responder,
    TimelineEntry,
    TimelineKind,
)
from warroom.incidents.schemas import (
    Assessment,
    CommunicationCreate,
    CommunicationRead,
    IncidentChanged,
    IncidentCreate,
    IncidentFilter,
    IncidentPage,
    IncidentRead,
    IncidentUpdate,
    ResponderCreate,
    ResponderRead,
    TimelineEntryCreate,
    TimelineEntryRead,
    TimelinePage,
    TimelineQuery,
)
from warroom.notify import service as notify_service
from warroom.orgconfig import OrgConfig
from warroom.severity import service as severity_service

GENESIS_HASH = "0" * 64


# --- lookups -------------------------------------------------------------------------------------


def parse_ref(ref: str | int) -> int:
    return parse_row_ref(ref, "INC", "incident")


def lock_incidents(session: Session, incident_ids: Iterable[int]) -> dict[int, Incident]:
    """Several incidents, each locked for update, by id. Locked in id order, so two transactions that lock
    overlapping sets (opposite moves or merges) cannot deadlock."""
    return {
        incident_id: get_incident(session, incident_id, for_update=True)
        for incident_id in sorted(set(incident_ids))
    }


def get_incident(session: Session, ref: str | int, *, for_update: bool = False) -> Incident:
    incident_id = parse_ref(ref)
    statement = (
        select(Incident)
        .where(Incident.id == incident_id)
        .options(selectinload(Incident.services), selectinload(Incident.responders))
    )
    if for_update:
        # Serialises concurrent changes to one incident (and its timeline chain) on PostgreSQL;
        # SQLite write transactions are already serialised by BEGIN IMMEDIATE.
        statement = statement.with_for_update(of=Incident)
        # What the lock guards is the row as it is now, not as this session may have read it before (an
        # intake that found the incident open, then waited for the lock while another process resolved it).
        statement = statement.execution_options(populate_existing=True)
    incident = session.scalar(statement)
    if incident is None:
        raise NotFound(f"no incident INC-{incident_id}")
    return incident


def stored_assessment(stored: dict[str, Any] | None) -> Assessment | None:
    """An assessment as stored. Input rules tightened since some were written (a time without an offset was
    kept as given): such a time is read as UTC, or left out if it cannot be one, rather than fail the read."""
    if not stored:
        return None
    try:
        return Assessment.model_validate(stored)
    except ValidationError:
        assessed_at = stored.get("assessed_at")
        try:
            moment = datetime.fromisoformat(str(assessed_at))
            kept = in_era(moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
        except ValueError:
            kept = None
        return Assessment.model_validate({**stored, "assessed_at": kept})


def to_read(session: Session, org: OrgConfig, incident: Incident) -> IncidentRead:
    into = merged_into(session, incident)
    return IncidentRead(
        id=incident.ref,
        number=incident.id,
        title=incident.title,
        summary=incident.summary,
        severity=incident.severity,
        status=incident.status,
        is_private=incident.is_private,
        commander=incident.commander,
        services=incident.service_names,
        created_by=incident.created_by,
        created_at=incident.created_at,
        updated_at=incident.updated_at,
        acknowledged_at=incident.acknowledged_at,
        acknowledged_by=incident.acknowledged_by,
        identified_at=incident.identified_at,
        monitoring_at=incident.monitoring_at,
        resolved_at=incident.resolved_at,
        closed_at=incident.closed_at,
        response_due_at=severity_service.response_due_at(
            org, incident.severity, incident.created_at, incident.service_names
        ),
        assessment=stored_assessment(incident.assessment),
        responders=[ResponderRead.model_validate(r) for r in incident.responders],
        merged_into=f"INC-{into}" if into is not None else None,
        update_due_at=comms_service.next_update_due(session, incident.id)
        if incident.status.is_open
        else None,
    )


def to_changed(session: Session, org: OrgConfig, incident: Incident, *, unchanged: bool) -> IncidentChanged:
    """The answer to a change: the incident, and whether the request changed nothing (a repeat)."""
    return IncidentChanged(**to_read(session, org, incident).model_dump(), unchanged=unchanged)


def list_incidents(session: Session, *, org: OrgConfig, query: IncidentFilter) -> IncidentPage:
    statement = select(Incident)
    if query.status:
        statement = statement.where(Incident.status.in_(query.status))
    if query.severity:
        for severity_id in query.severity:
            severity_service.validate_severity(org, severity_id)
        statement = statement.where(Incident.severity.in_(query.severity))
    if query.service:
        known = {service.name for service in org.services}
        if (
            known
            and query.service not in known
            and not session.scalar(
                select(IncidentService.incident_id).where(IncidentService.service == query.service).limit(1)
            )
        ):
            # Neither in the org file nor on any incident (one removed from the file still finds its history).
            org.check_services([query.service], field="service")
        statement = statement.where(
            Incident.id.in_(
                select(IncidentService.incident_id).where(IncidentService.service == query.service)
            )
        )
    if query.state == "open":
        statement = statement.where(Incident.status.in_(OPEN_STATUSES))
    elif query.state == "closed":
        statement = statement.where(Incident.status.not_in(OPEN_STATUSES))
    if query.before_id is not None:
        statement = statement.where(Incident.id < query.before_id)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(
        statement.options(selectinload(Incident.services), selectinload(Incident.responders))
        .order_by(Incident.id.desc())
        .limit(query.limit)
        .offset(query.offset)
    )
    return IncidentPage(
        items=[to_read(session, org, row) for row in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


# --- timeline ------------------------------------------------------------------------------------


def _entry_digest(
    prev_hash: str,
    incident_id: int,
    seq: int,
    occurred_at: datetime,
    performer: str,
    kind: str,
    action: str,
    impact: str | None,
    system_state: Any,
    data: Any,
    *,
    key: bytes | None = None,
) -> str:
    """An entry's hash: HMAC-SHA256 with the chain key (``Settings.timeline_key``); with no key, the plain
    SHA-256 of entries written before the chain was keyed (migration 0041), which only verify still uses."""
    canonical = json.dumps(
        {
            "prev": prev_hash,
            "incident": incident_id,
            "seq": seq,
            "at": occurred_at.isoformat(timespec="microseconds"),
            "performer": performer,
            "kind": kind,
            "action": action,
            "impact": impact,
            "state": system_state,
            "data": data,
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    ).encode()
    if key is None:
        return hashlib.sha256(canonical).hexdigest()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def stored_entry_digest(row: TimelineEntry, prev_hash: str, *, key: bytes | None = None) -> str:
    """What a stored entry's hash should be, linked to ``prev_hash`` (``key`` None: an unkeyed entry)."""
    return _entry_digest(
        prev_hash,
        row.incident_id,
        row.seq,
        row.occurred_at,
        row.performer,
        row.kind,
        row.action,
        row.impact,
        row.system_state,
        row.data,
        key=key,
    )


def chain_genesis(key: bytes, incident_id: int) -> str:
    """Where a keyed chain starts: a keyed value of the incident's number, not zeros, so a timeline wiped
    back to its start cannot be begun again without the key."""
    return hmac.new(key, f"genesis:{incident_id}".encode(), hashlib.sha256).hexdigest()


def chain_seal(key: bytes, incident_id: int, count: int, head: str, keyed_from: int) -> str:
    """The incident's seal over its chain's recorded length and head (and where its keyed part begins)."""
    message = f"seal:{incident_id}:{count}:{head}:{keyed_from}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def number_mark_seal(key: bytes, highest: int) -> str:
    """The seal over the highest incident number created (``IncidentNumberMark``)."""
    return hmac.new(key, f"incident-mark:{highest}".encode(), hashlib.sha256).hexdigest()


def raise_number_mark(session: Session, number: int) -> None:
    """Move the sealed high-water mark of incident numbers up to ``number`` (a new incident's), in the
    creating transaction: one small upsert, which leaves a higher mark (a concurrent creation's) alone."""
    dialect = session.get_bind().dialect.name
    insert: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    seal = number_mark_seal(timeline_key(session), number)
    table = IncidentNumberMark.__table__
    statement = insert(table).values(id=1, highest=number, seal=seal)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[table.c.id],
            set_={"highest": statement.excluded.highest, "seal": statement.excluded.seal},
            where=table.c.highest < statement.excluded.highest,
        )
    )


def timeline_key(session: Session) -> bytes:
    """The chain key of the app the session was opened from (its settings' secret key), or the one a
    database outside an app was given (``Database.set_session_info(timeline_key=...)``)."""
    key = session.info.get("timeline_key")
    if isinstance(key, bytes):
        return key
    from warroom.context import context_of

    return context_of(session).settings.timeline_key


def seal_new_timeline(session: Session, incident: Incident) -> None:
    """Start a new incident's (empty) chain: keyed genesis, sealed at count 0. After the flush that gave it
    its number."""
    key = timeline_key(session)
    incident.timeline_count = 0
    incident.timeline_keyed_from = 1
    incident.timeline_head = chain_genesis(key, incident.id)
    incident.timeline_seal = chain_seal(key, incident.id, 0, incident.timeline_head, 1)


def append_timeline(
    session: Session,
    incident: Incident,
    *,
    performer: str,
    kind: TimelineKind | str,
    action: str,
    impact: str | None = None,
    system_state: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEntry:
    """Append one hash-chained entry. The caller holds the incident row (``for_update``)."""
    occurred_at = occurred_at or utcnow()
    # Round-trip through JSON so the hash is computed over exactly what the database stores.
    system_state = json.loads(json.dumps(system_state, default=str)) if system_state is not None else None
    data = json.loads(json.dumps(data, default=str)) if data is not None else None
    key = timeline_key(session)
    seq = incident.timeline_count + 1
    keyed_from = incident.timeline_keyed_from or 1
    if incident.timeline_head:
        prev_hash = incident.timeline_head
    else:  # not started by seal_new_timeline: a keyed chain starts at its keyed genesis
        prev_hash = chain_genesis(key, incident.id) if keyed_from == 1 else GENESIS_HASH
    # Carry the seal on only from one that holds (create_incident seals the empty chain): a wiped or
    # re-chained timeline stays detectably broken rather than sealed afresh by the next entry.
    expected = chain_seal(key, incident.id, incident.timeline_count, incident.timeline_head, keyed_from)
    sealed = incident.timeline_seal == expected
    if not sealed and not inspect(incident).attrs.timeline_seal.history.has_changes():
        # A caller that refreshed only the count and head under its lock holds an older seal: read it again
        # (only then: a seal that holds costs no query).
        session.refresh(incident, ["timeline_seal"])
        sealed = incident.timeline_seal == expected
    entry = TimelineEntry(
        incident_id=incident.id,
        seq=seq,
        occurred_at=occurred_at,
        performer=performer,
        kind=str(kind),
        action=action,
        impact=impact,
        system_state=system_state,
        data=data,
        prev_hash=prev_hash,
        hash=_entry_digest(
            prev_hash,
            incident.id,
            seq,
            occurred_at,
            performer,
            str(kind),
            action,
            impact,
            system_state,
            data,
            key=key,
        ),
    )
    session.add(entry)
    incident.timeline_count = seq
    incident.timeline_head = entry.hash
    incident.timeline_keyed_from = keyed_from
    if sealed:
        incident.timeline_seal = chain_seal(key, incident.id, seq, entry.hash, keyed_from)
    incident.updated_at = occurred_at
    return entry


def record(
    session: Session,
    incident: Incident,
    *,
    performer: str,
    kind: TimelineKind,
    action: str,
    data: dict[str, Any] | None = None,
    event: str | None = None,
    occurred_at: datetime | None = None,
) -> TimelineEntry:
    """Put a change on the timeline and, when it is one others react to, announce it as ``event``
    (with the same data) inside the same transaction."""
    entry = append_timeline(
        session, incident, performer=performer, kind=kind, action=action, data=data, occurred_at=occurred_at
    )
    if event is not None:
        session.flush()
        publish(session, DomainEvent(event, incident.id, performer, dict(data or {})))
    return entry


def get_timeline(session: Session, ref: str | int) -> list[TimelineEntryRead]:
    """Every entry, oldest first (in-process readers; the API pages it: ``timeline_page``)."""
    incident = get_incident(session, ref)
    rows = session.scalars(
        select(TimelineEntry).where(TimelineEntry.incident_id == incident.id).order_by(TimelineEntry.seq)
    )
    return [TimelineEntryRead.model_validate(row) for row in rows]


def timeline_page(session: Session, ref: str | int, query: TimelineQuery) -> TimelinePage:
    """A page of the timeline, oldest first within it: the newest ``limit`` entries (below ``before_seq``),
    or with ``after_seq`` the ``limit`` that follow that entry, which entries appended meanwhile do not
    shift. ``total`` counts what the cursors select, so the entries left out are ``total - offset - len``."""
    incident = get_incident(session, ref)
    statement = select(TimelineEntry).where(TimelineEntry.incident_id == incident.id)
    if query.before_seq is not None:
        statement = statement.where(TimelineEntry.seq < query.before_seq)
    if query.after_seq is not None:
        statement = statement.where(TimelineEntry.seq > query.after_seq)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    # Forward from an entry seen; otherwise back from the newest (what a reader of a live incident wants).
    forward = query.after_seq is not None
    order = TimelineEntry.seq if forward else TimelineEntry.seq.desc()
    rows = list(session.scalars(statement.order_by(order).limit(query.limit).offset(query.offset)))
    if not forward:
        rows.reverse()
    return TimelinePage(
        items=[TimelineEntryRead.model_validate(row) for row in rows],
        total=total,
        limit=query.limit,
        offset=query.offset,
    )


def log_action(
    session: Session, *, ref: str | int, entry: TimelineEntryCreate, performer: str
) -> TimelineEntryRead:
    incident = get_incident(session, ref, for_update=True)
    ensure_not_closed(incident, "a timeline entry")
    row = append_timeline(
        session,
        incident,
        performer=performer,
        kind=entry.kind,
        action=entry.action,
        impact=entry.impact,
        system_state=entry.system_state,
    )
    session.flush()
    return TimelineEntryRead.model_validate(row)


@dataclass(frozen=True)
class ChainProblem:
    incident: str
    seq: int
    reason: str


@dataclass(frozen=True)
class AuditReport:
    checked: int
    problems: list[ChainProblem]
    # Not proof of tampering: numbers PostgreSQL's sequence skipped may be rolled-back transactions'.
    warnings: list[str]
    # Every incident failed where the key is first needed (its first keyed entry or its seal): most likely
    # not the server's secret key, rather than every timeline tampered with.
    wrong_key: bool = False


def verify_timelines(session: Session, key: bytes | None = None) -> tuple[int, list[ChainProblem]]:
    """Recompute every chain (with the chain key, ``Settings.timeline_key``; by default the session's app's).
    Returns how many entries were checked and the first break per incident. ``audit`` also checks the
    incident numbers."""
    report = audit(session, key, numbers=False)
    return report.checked, report.problems


# Entries read per round trip while ``audit`` streams every timeline (memory stays flat on a long history).
AUDIT_BATCH = 1000


def _entries_by_incident(session: Session) -> Iterator[tuple[int, list[TimelineEntry]]]:
    """Every incident's entries, in incident then seq order, from one streamed query: one statement for the
    whole audit rather than one per incident."""
    rows = session.scalars(
        select(TimelineEntry)
        .order_by(TimelineEntry.incident_id, TimelineEntry.seq)
        .execution_options(yield_per=AUDIT_BATCH)
    )
    for incident_id, entries in groupby(rows, key=lambda row: row.incident_id):
        yield incident_id, list(entries)


def audit(
    session: Session,
    key: bytes | None = None,
    *,
    numbers: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> AuditReport:
    """Every incident's chain and seal, and (``numbers``) gaps in the incident numbers. ``progress`` is told
    (incidents checked, of how many) as each incident is done. Two statements read everything, whatever the
    number of incidents (a third per incident only where entries lie past its recorded head)."""
    key = key if key is not None else timeline_key(session)
    problems: list[ChainProblem] = []
    warnings: list[str] = []
    checked = 0
    key_failures = 0
    # Before the incidents: the mark moves in the transaction that creates its incident, so every incident
    # up to the mark read here is among those read next (unless deleted).
    mark = (
        session.execute(select(IncidentNumberMark.highest, IncidentNumberMark.seal)).first()
        if numbers
        else None
    )
    incidents = session.execute(
        select(
            Incident.id,
            Incident.timeline_head,
            Incident.timeline_count,
            Incident.timeline_seal,
            Incident.timeline_keyed_from,
        ).order_by(Incident.id)
    ).all()
    # Read after the incidents: an incident created since has entries here and is not among them (skipped,
    # the next check's); one's entries appended since lie past the head read above (see below).
    timelines = _entries_by_incident(session)
    pending = next(timelines, None)
    for done, (incident_id, head, count, seal, keyed_from) in enumerate(incidents, start=1):
        if progress is not None:
            progress(done - 1, len(incidents))
        while pending is not None and pending[0] < incident_id:  # a deleted incident's, or an unknown id
            pending = next(timelines, None)
        entries: list[TimelineEntry] = []
        if pending is not None and pending[0] == incident_id:
            entries = pending[1]
            pending = next(timelines, None)
        ref = f"INC-{incident_id}"
        prev = GENESIS_HASH if keyed_from > 1 else chain_genesis(key, incident_id)
        expected_seq = 1
        broken = False
        # Only the entries the head read above covers: on a running system, entries appended since (with a
        # new head, in their own commit) are the next check's, not a break.
        for row in (entry for entry in entries if entry.seq <= count):
            checked += 1
            reason = None
            if row.seq != expected_seq:
                reason = f"entry {expected_seq} is missing (found {row.seq} next)"
            elif row.prev_hash != prev:
                reason = "its link to the previous entry does not match"
            else:
                digest = stored_entry_digest(row, row.prev_hash, key=key if row.seq >= keyed_from else None)
                if digest != row.hash:
                    reason = "its content does not match its hash (edited after it was written)"
            if reason:
                problems.append(ChainProblem(ref, row.seq, reason))
                broken = True
                # Where a wrong key shows first: the keyed genesis, or the first keyed entry's hash.
                if (row.seq == 1 and keyed_from == 1 and reason.startswith("its link")) or (
                    row.seq == keyed_from and reason.startswith("its content")
                ):
                    key_failures += 1
                break
            prev = row.hash
            expected_seq += 1
        if broken:
            continue
        if expected_seq - 1 != count or prev != head:
            if expected_seq > 1:
                problems.append(ChainProblem(ref, expected_seq, "entries after this point were removed"))
            elif not seal:
                problems.append(ChainProblem(ref, 0, _UNSEALED))
            elif count:
                problems.append(
                    ChainProblem(ref, 0, f"its entries were removed: none is left of the {count} recorded")
                )
            else:
                problems.append(
                    ChainProblem(
                        ref,
                        0,
                        "its entries were removed: none is left, and its recorded entry count and head do "
                        "not match their seal",
                    )
                )
            continue
        # The entries hold together: their recorded count and head must be the sealed ones (a wipe back
        # to the start, or a chain re-hashed as a whole, holds together but is not).
        if not seal:
            problems.append(ChainProblem(ref, 0, _UNSEALED))
            continue
        if seal != chain_seal(key, incident_id, count, head, keyed_from):
            key_failures += 1
            problems.append(
                ChainProblem(
                    ref,
                    0,
                    "its recorded entry count and head do not match their seal: the timeline was wiped or "
                    "re-chained (or this is not the server's secret key)",
                )
            )
            continue
        # Entries past the head: appended with the head moved since (read again now, only then), or slipped
        # in without it.
        last = entries[-1].seq if entries else None
        if last is not None and last > count:
            head_now = session.scalar(select(Incident.timeline_count).where(Incident.id == incident_id))
            if last > max(count, head_now or 0):
                problems.append(
                    ChainProblem(ref, count + 1, "entries were added past the incident's recorded head")
                )
    if progress is not None and incidents:
        progress(len(incidents), len(incidents))
    wrong_key = bool(incidents) and key_failures == len(incidents)
    if numbers:
        _missing_numbers(
            session, key, mark, [row[0] for row in incidents], problems, warnings, wrong_key=wrong_key
        )
    return AuditReport(checked, problems, warnings, wrong_key)


_UNSEALED = (
    "its timeline is not sealed (its seal was removed, or the database was migrated without the server's "
    "secret key)"
)
NUMBERS = "incident numbers"


def _missing_numbers(
    session: Session,
    key: bytes,
    mark: Any,
    numbers: list[int],
    problems: list[ChainProblem],
    warnings: list[str],
    *,
    wrong_key: bool = False,
) -> None:
    """Incident numbers below the highest handed out that no incident has: deleted. SQLite (AUTOINCREMENT)
    hands a number out in the inserting transaction, so a rollback takes it back and a gap is a deletion; a
    PostgreSQL sequence keeps a number a rolled-back transaction took, so there a gap is only a warning.
    The sealed mark (``IncidentNumberMark``) is the highest number an incident was created with (committed):
    the sequence can be lowered by anyone who can write, the mark not without the key; its own number missing
    is a deletion on PostgreSQL too."""
    dialect = session.get_bind().dialect.name
    marked = 0
    if mark is None:
        if numbers:
            problems.append(
                ChainProblem(
                    NUMBERS,
                    0,
                    "the highest incident number created is not recorded (its sealed mark was removed): a "
                    "deleted newest incident would not be found",
                )
            )
    else:
        marked = int(mark.highest)
        if not mark.seal:
            problems.append(
                ChainProblem(
                    NUMBERS,
                    0,
                    f"the highest incident number created (INC-{marked}) is not sealed (the database was "
                    "migrated without the server's secret key): a deleted newest incident would not be found",
                )
            )
        elif mark.seal != number_mark_seal(key, marked) and not wrong_key:  # else: the key, not the mark
            problems.append(
                ChainProblem(
                    NUMBERS,
                    0,
                    f"the highest incident number created (INC-{marked}) does not match its seal: it was "
                    "changed (lowered, to hide a deleted newest incident), or this is not the server's key",
                )
            )
    if dialect == "sqlite":
        issued = session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'incidents'")).scalar()
    elif dialect == "postgresql":
        issued = session.execute(
            text("SELECT pg_sequence_last_value(pg_get_serial_sequence('incidents', 'id'))")
        ).scalar()
    else:
        issued = None
    highest = max([*numbers, int(issued or 0), marked], default=0)
    present = set(numbers)
    missing = [number for number in range(1, highest + 1) if number not in present]
    for start, end in _runs(missing):
        also = f", and every number after it up to INC-{end}" if end > start else ""
        if dialect == "sqlite":
            problems.append(ChainProblem(f"INC-{start}", 0, f"missing{also} (deleted)"))
        elif start <= marked <= end:
            # The marked number was committed (the mark moves with its incident): deleted, not a rolled-back
            # transaction's. A warning, as the other gaps on PostgreSQL; below and past it maybe rollbacks.
            for low, high in ((start, marked - 1), (marked + 1, end)):
                if low <= high:
                    more = f", and every number after it up to INC-{high}" if high > low else ""
                    warnings.append(
                        f"INC-{low} missing{more} (deleted, or a number a rolled-back transaction took)"
                    )
            warnings.append(
                f"INC-{marked} missing (deleted: the newest incident created, by the sealed mark of the "
                "highest number)"
            )
        else:
            warnings.append(
                f"INC-{start} missing{also} (deleted, or a number a rolled-back transaction took)"
            )


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number - 1:
            runs[-1] = (runs[-1][0], number)
        else:
            runs.append((number, number))
    return runs


# --- create and change ----------------------------------------------------------------------------


def _validate_services(org: OrgConfig, services: list[str]) -> list[str]:
    unique = list(dict.fromkeys(services))  # as named: the first chooses the escalation policy
    if org.services:  # an org file that lists no services leaves the names free
        org.check_services(unique)
    return unique


def _validate_role(org: OrgConfig, role: str) -> str:
    if role not in org.roles:
        raise InvalidInput(
            f"unknown role {role!r}; allowed: {', '.join(org.roles)}", {"field": "role", "allowed": org.roles}
        )
    return role


def create_incident(
    session: Session, *, org: OrgConfig, data: IncidentCreate, performer: str, kind_note: str | None = None
) -> Incident:
    services = _validate_services(org, data.services)
    suggestion = None
    if data.severity is not None:
        severity = severity_service.validate_severity(org, data.severity)
    elif data.assessment is not None:
        suggestion = severity_service.suggest_severity(org, data.assessment, services)
        severity = suggestion.severity
    else:
        severity = org.default_severity
    now = utcnow()
    assessment = (
        data.assessment.model_copy(update={"assessed_at": data.assessment.assessed_at or now})
        if data.assessment
        else None
    )
    incident = Incident(
        title=data.title,
        summary=data.summary,
        severity=severity,
        status=IncidentStatus.investigating,
        is_private=data.is_private,
        created_by=performer,
        created_at=now,
        updated_at=now,
        assessment=assessment.model_dump(mode="json") if assessment else {},
        timeline_head="",
        timeline_count=0,
        services=[IncidentService(service=name, position=index) for index, name in enumerate(services)],
    )
    session.add(incident)
    session.flush()  # assigns the number
    seal_new_timeline(session, incident)
    raise_number_mark(session, incident.id)
    notes = [kind_note] if kind_note else []
    if suggestion is not None:
        # Why this level, in the text `incident timeline` shows, not only in the entry's data.
        notes.append(f"suggested from the assessment: {'; '.join(suggestion.reasons)}")
    detail = f" ({'; '.join(notes)})" if notes else ""
    append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.created,
        occurred_at=now,
        action=f"Incident {incident.ref} declared at {severity}: {data.title}{detail}",
        data={
            "severity": severity,
            "services": services,
            "suggestion": suggestion.model_dump() if suggestion else None,
        },
    )
    if data.commander:
        set_commander(session, incident, name=data.commander, performer=performer, org=org)
    session.flush()
    publish(session, DomainEvent("incident.created", incident.id, performer, {"severity": severity}))
    return incident


def set_commander(
    session: Session,
    incident: Incident,
    *,
    name: str,
    performer: str,
    org: OrgConfig,
    contact: str = "",
    note: str | None = None,
) -> Responder | None:
    """Hand command to ``name``. The previous commander steps down in the same transaction. ``note``: why,
    on the hand-over's timeline entry."""
    current = next((r for r in incident.responders if r.role == "commander" and r.left_at is None), None)
    if current is not None and current.name == name:
        return current
    now = utcnow()
    if current is not None:
        current.left_at = now
        session.flush()  # free the single-commander slot before the new one takes it
    responder = Responder(name=name, role="commander", contact=contact, joined_at=now)
    incident.responders.append(responder)
    previous = incident.commander
    incident.commander = name
    action = f"Command handed from {previous} to {name}" if previous else f"{name} is incident commander"
    record(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.commander_change,
        action=_with_note(action, note),
        data={"from": previous, "to": name},
        event="incident.commander_changed",
    )
    return responder


def merged_into(session: Session, incident: Incident) -> int | None:
    """The incident this one is merged into: its "Merged into" note, while the resolve that merge made is the
    one in force. A reopen ends the merge (and a later plain resolve is not one), so an incident merged,
    reopened and then made the target of its target's merge names no incident, not a circle."""
    if incident.status.is_open:
        return None
    entries = session.execute(
        select(TimelineEntry.kind, TimelineEntry.data)
        .where(
            TimelineEntry.incident_id == incident.id,
            TimelineEntry.kind.in_([TimelineKind.note, TimelineKind.status_change, TimelineKind.reopened]),
        )
        .order_by(TimelineEntry.seq.desc())
    )
    resolve_seen = False
    for kind, data in entries:
        facts = data if isinstance(data, dict) else {}
        if kind == TimelineKind.note:
            if resolve_seen and isinstance(facts.get("into"), int):
                return int(facts["into"])  # a merge writes its note just before its resolve
            continue
        if not resolve_seen and kind == TimelineKind.status_change and facts.get("to") != "resolved":
            continue  # closed or in post-mortem since the resolve: that keeps the merge
        if resolve_seen or kind == TimelineKind.reopened:
            return None  # the resolve in force came after a reopen or another status: a plain one
        resolve_seen = True
    return None


def merge_chain(session: Session, incident: Incident) -> list[Incident]:
    """The incidents ``incident`` went into by merges, in order: the one it was merged into, the one that one
    was merged into since, and so on; the last is where its alerts and pages are now. Empty when it is not
    merged. A merge ends at a reopen (``merged_into``), so no chain comes back to itself; the guard is for
    rows written otherwise."""
    chain: list[Incident] = []
    seen = {incident.id}
    current = incident
    while (into := merged_into(session, current)) is not None and into not in seen:
        seen.add(into)
        current = get_incident(session, into)
        chain.append(current)
    return chain


def ensure_not_closed(incident: Incident, change: str) -> None:
    """A closed incident is the finished record (its review is done): people change nothing on it. Work
    already under way (a delivery, a job) still notes its outcome on the timeline."""
    if incident.status == IncidentStatus.closed:
        raise Conflict(
            f"{incident.ref} is closed, so its record is final: {change} is refused",
            {"field": "status", "status": incident.status.value},
        )


def _check_transition(current: IncidentStatus, target: IncidentStatus) -> None:
    if target not in TRANSITIONS[current]:
        allowed = sorted(s.value for s in TRANSITIONS[current])
        # Skipping ahead stops at resolved: closing (or a post-mortem) follows a resolve, which records when
        # service came back and resolves the incident's alerts.
        first = "; resolve it first" if current.is_open and not target.is_open else ""
        raise InvalidTransition(
            f"cannot move from {current.value} to {target.value}; allowed from {current.value}: "
            + (", ".join(allowed) or "none (closed is final)")
            + first,
            {"field": "status", "from": current.value, "to": target.value, "allowed": allowed},
        )


def _apply_status(
    session: Session, incident: Incident, target: IncidentStatus, performer: str, note: str | None
) -> None:
    current = incident.status
    now = utcnow()
    reopened = current == IncidentStatus.resolved and target in OPEN_STATUSES
    incident.status = target
    if target == IncidentStatus.identified and incident.identified_at is None:
        incident.identified_at = now
    elif target == IncidentStatus.monitoring:
        incident.monitoring_at = now
    elif target == IncidentStatus.resolved:
        incident.resolved_at = now
    elif target == IncidentStatus.closed:
        incident.closed_at = now
    move: dict[str, Any] = {"from": current.value, "to": target.value}
    if reopened:
        incident.resolved_at = None
        if incident.acknowledged_at is not None:
            # Nobody owns the problem that came back until someone says so: a raise now escalates until an
            # acknowledgement, instead of stopping at the first page on the strength of the old one.
            move["previous_acknowledgement"] = {
                "at": incident.acknowledged_at.isoformat(),
                "by": incident.acknowledged_by,
            }
            incident.acknowledged_at = None
            incident.acknowledged_by = None
    kind = TimelineKind.reopened if reopened else TimelineKind.status_change
    verb = "Reopened" if reopened else "Status"
    action = _with_note(f"{verb}: {current.value} → {target.value}", note)
    event = "incident.reopened" if reopened else f"incident.{target.value}"
    record(
        session,
        incident,
        performer=performer,
        kind=kind,
        action=action,
        occurred_at=now,
        data=move,
        event=event,
    )
    publish(session, DomainEvent("incident.status_changed", incident.id, performer, move))


def _with_note(action: str, note: str | None) -> str:
    """A change's timeline text with the note that says why, when one came with it."""
    return f"{action} — {note}" if note else action


def update_incident(
    session: Session, *, org: OrgConfig, ref: str | int, data: IncidentUpdate, performer: str
) -> Incident:
    """Change what ``data`` gives. Its ``note`` (why) goes on the timeline whatever changed: on each entry of
    a change it explains, or, when nothing changed (the title or status it had already, a second resolve), as
    a note entry of its own that says so; a note alone is a note."""
    return change_incident(session, org=org, ref=ref, data=data, performer=performer)[0]


def change_incident(
    session: Session, *, org: OrgConfig, ref: str | int, data: IncidentUpdate, performer: str
) -> tuple[Incident, bool]:
    """``update_incident``, and whether it changed nothing: every field ``data`` asks for the incident had
    already (a second resolve, the status it has). A note alone is not such a repeat: it is what was asked."""
    incident = get_incident(session, ref, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    note = changes.pop("note", None)
    _refuse_response_change_of_merged(session, incident, data, changes)
    ensure_not_closed(incident, "a change")
    if not changes and not note:
        raise InvalidInput("nothing to change: give at least one field", {"field": None})
    # Validate everything before changing anything.
    for field_name in ("title", "severity", "status", "services", "is_private", "commander", "assessment"):
        if field_name in changes and changes[field_name] is None:
            raise InvalidInput(f"{field_name} cannot be null", {"field": field_name})
    if data.severity is not None:
        severity_service.validate_severity(org, data.severity)
    if data.status is not None and data.status != incident.status:
        _check_transition(incident.status, data.status)
    services = _validate_services(org, data.services) if data.services is not None else None
    # Each change appends an entry; none appended means nothing changed, and the note goes on by itself.
    entries_before = incident.timeline_count
    unchanged = _already(incident, data, services)

    if data.title is not None and data.title != incident.title:
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.field_change,
            action=_with_note(f"Title changed to {data.title!r}", note),
            data={"from": incident.title, "to": data.title},
        )
        incident.title = data.title
    if data.summary is not None and data.summary != incident.summary:
        incident.summary = data.summary
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.field_change,
            action=_with_note("Summary updated", note),
            data={"summary": data.summary},
        )
    if data.is_private is not None and data.is_private != incident.is_private:
        incident.is_private = data.is_private
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.field_change,
            action=_with_note("Marked private" if data.is_private else "Marked public", note),
        )
    if services is not None and services != incident.service_names:
        before = incident.service_names
        incident.services = [
            IncidentService(service=name, position=index) for index, name in enumerate(services)
        ]
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.field_change,
            action=_with_note(f"Affected services: {', '.join(services) or 'none'}", note),
            data={"from": before, "to": services},
        )
    if data.assessment is not None:
        assessment = data.assessment.model_copy(
            update={"assessed_at": data.assessment.assessed_at or utcnow()}
        )
        incident.assessment = assessment.model_dump(mode="json")
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.assessment,
            action=_with_note("Assessment updated", note),
            data=incident.assessment,
        )
    if data.severity is not None and data.severity != incident.severity:
        before_severity = incident.severity
        incident.severity = data.severity
        direction = (
            "raised" if org.severity_rank(data.severity) < org.severity_rank(before_severity) else "lowered"
        )
        record(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.severity_change,
            action=_with_note(f"Severity {direction}: {before_severity} → {data.severity}", note),
            data={"from": before_severity, "to": data.severity, "direction": direction},
            event="incident.severity_changed",
        )
    if data.commander is not None:
        set_commander(session, incident, name=data.commander, performer=performer, org=org, note=note)
    if data.status is not None and data.status != incident.status:
        _apply_status(session, incident, data.status, performer, note)
    # Every change appends an entry (before the note below), so none appended means none made.
    repeat = bool(changes) and incident.timeline_count == entries_before
    if note and incident.timeline_count == entries_before:
        # A second resolve with its note (a retry, a cron job): the note is kept, and says nothing changed.
        said = f" (nothing changed: {'; '.join(unchanged.values())})" if unchanged else ""
        append_timeline(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.note,
            action=note + said,
            data={"note": note, "unchanged": list(unchanged)},
        )
    session.flush()
    return incident, repeat


# The fields a change of a merged incident is refused for: they steer the response, which goes on on the
# incident it went into (a raise there pages; here it would change only the resolved duplicate). Its own
# record (title, summary, privacy, notes, status) stays its own to change.
_RESPONSE_FIELDS = ("severity", "services", "commander", "assessment")


def _refuse_response_change_of_merged(
    session: Session, incident: Incident, data: IncidentUpdate, changes: dict[str, Any]
) -> None:
    """409 for a change of a merged incident's severity, services, commander or assessment, naming the
    incident it went into; unless the same change reopens it, which ends the merge."""
    asked = [name for name in _RESPONSE_FIELDS if name in changes]
    if not asked or incident.status.is_open or (data.status is not None and data.status.is_open):
        return
    fields = " and ".join(", ".join(asked).rsplit(", ", 1))
    refuse_merged(
        session,
        incident,
        lambda survivor: f"set the {fields} on {survivor.ref} (or reopen {incident.ref} first)",
        field=asked[0],
    )


def _already(incident: Incident, data: IncidentUpdate, services: list[str] | None) -> dict[str, str]:
    """The fields ``data`` asks for that ``incident`` has already, each with how to say so."""
    said: dict[str, str] = {}
    if data.title is not None and data.title == incident.title:
        said["title"] = f"the title was {data.title!r} already"
    if data.summary is not None and data.summary == incident.summary:
        said["summary"] = "the summary was that already"
    if data.is_private is not None and data.is_private == incident.is_private:
        said["is_private"] = f"{incident.ref} was {'private' if data.is_private else 'public'} already"
    if services is not None and services == incident.service_names:
        said["services"] = f"the services were {', '.join(services) or 'none'} already"
    if data.severity is not None and data.severity == incident.severity:
        said["severity"] = f"{incident.ref} was {data.severity} already"
    if data.commander is not None and data.commander == incident.commander:
        said["commander"] = f"{data.commander} was commander already"
    if data.status is not None and data.status == incident.status:
        said["status"] = f"{incident.ref} was {data.status.value} already"
    return said


def acknowledge_answer(
    session: Session, *, org: OrgConfig, ref: str | int, performer: str
) -> IncidentChanged:
    """``acknowledge``, answered with whether it had been acknowledged already (nothing changed)."""
    already = get_incident(session, ref, for_update=True).acknowledged_at is not None
    incident = acknowledge(session, ref=ref, performer=performer)
    return to_changed(session, org, incident, unchanged=already)


def acknowledge(session: Session, *, ref: str | int, performer: str) -> Incident:
    """Idempotent: a second acknowledgement changes nothing."""
    incident = get_incident(session, ref, for_update=True)
    if incident.acknowledged_at is None:
        if not incident.status.is_open:
            refuse_merged(session, incident, _acknowledge_instead)
        ensure_not_closed(incident, "an acknowledgement")
        if not incident.status.is_open:
            raise Conflict(
                f"{incident.ref} is {incident.status.value}; there is nothing to acknowledge",
                {"field": "status", "status": incident.status.value},
            )
        incident.acknowledged_at = utcnow()
        incident.acknowledged_by = performer
        record(
            session,
            incident,
            performer=performer,
            kind=TimelineKind.acknowledged,
            action=f"Acknowledged by {performer}",
            occurred_at=incident.acknowledged_at,
            event="incident.acknowledged",
        )
    return incident


def merged_words(incident: Incident, chain: list[Incident]) -> str:
    """ "INC-1 was merged into INC-2", with ", since merged into INC-3" when ``chain`` (``merge_chain``)
    goes on."""
    return f"{incident.ref} was merged into {chain[0].ref}" + (
        f", since merged into {chain[-1].ref}" if len(chain) > 1 else ""
    )


def refuse_merged(
    session: Session, incident: Incident, then: Callable[[Incident], str], *, field: str = "status"
) -> None:
    """409 for what is asked of an incident merged into another (nothing, when it is not): its alerts and
    pages went on there, so the refusal names where, following later merges to the last, as a page request's
    and an ack link's do ("INC-4 was merged into INC-3: acknowledge INC-3"); ``then`` says what to do, given
    that last incident."""
    chain = merge_chain(session, incident)
    if not chain:
        return
    survivor = chain[-1]
    raise Conflict(
        f"{merged_words(incident, chain)}: {then(survivor)}",
        {"field": field, "status": incident.status.value, "merged_into": survivor.ref},
    )


def _acknowledge_instead(survivor: Incident) -> str:
    if survivor.status.is_open:
        return f"acknowledge {survivor.ref}"
    return f"{survivor.ref} is {survivor.status.value}; there is nothing to acknowledge"


def resolve(
    session: Session, *, org: OrgConfig, ref: str | int, performer: str, note: str | None = None
) -> Incident:
    return update_incident(
        session,
        org=org,
        ref=ref,
        data=IncidentUpdate(status=IncidentStatus.resolved, note=note),
        performer=performer,
    )


# --- responders ----------------------------------------------------------------------------------


def add_responder(
    session: Session, *, org: OrgConfig, ref: str | int, data: ResponderCreate, performer: str
) -> Responder:
    _validate_role(org, data.role)
    incident = get_incident(session, ref, for_update=True)
    ensure_not_closed(incident, "a new responder")
    if data.role == "commander":
        responder = set_commander(
            session, incident, name=data.name, performer=performer, org=org, contact=data.contact
        )
        assert responder is not None
        return responder
    active = next(
        (r for r in incident.responders if r.name == data.name and r.role == data.role and r.left_at is None),
        None,
    )
    if active is not None:
        return active
    responder = Responder(name=data.name, role=data.role, contact=data.contact, joined_at=utcnow())
    incident.responders.append(responder)
    record(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.responder_joined,
        action=f"{data.name} joined as {data.role}",
        data={"name": data.name, "role": data.role},
        event="incident.responder_joined",
    )
    return responder


def remove_responder(
    session: Session, *, ref: str | int, responder_id: int, performer: str
) -> tuple[Responder, bool]:
    """The responder leaves; returns them, and whether they left now (False: they had left already, and
    nothing changed)."""
    incident = get_incident(session, ref, for_update=True)
    ensure_not_closed(incident, "a responder leaving")
    responder = next((r for r in incident.responders if r.id == responder_id), None)
    if responder is None:
        raise NotFound(f"no responder {responder_id} on {incident.ref}")
    if responder.left_at is not None:
        return responder, False
    if responder.role == "commander":
        raise Conflict("the commander cannot leave: hand command to someone else first", {"field": "role"})
    responder.left_at = utcnow()
    append_timeline(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.responder_left,
        action=f"{responder.name} ({responder.role}) left",
        data={"name": responder.name},
    )
    session.flush()
    return responder, True


# --- communications --------------------------------------------------------------------------------


def send_communication(
    session: Session, *, org: OrgConfig, ref: str | int, data: CommunicationCreate, performer: str
) -> Communication:
    audience = org.audience(data.audience)
    if audience is None:
        allowed = [a.id for a in org.audiences]
        raise InvalidInput(
            f"unknown audience {data.audience!r}; allowed: {', '.join(allowed)}",
            {"field": "audience", "allowed": allowed},
        )
    incident = get_incident(session, ref, for_update=True)
    ensure_not_closed(incident, "an update")
    if incident.is_private and audience.reaches_outside:
        raise Conflict(
            f"{incident.ref} is private: its updates do not go to {audience.id}, which reaches people "
            "outside the org (make the incident public first if they should hear of it)",
            {"field": "audience"},
        )
    communication = Communication(
        incident_id=incident.id,
        sender=performer,
        audience=audience.id,
        channels=list(audience.channels),
        message=data.message,
        sent_at=utcnow(),
    )
    session.add(communication)
    session.flush()  # the id goes into the event, so delivery can find the message
    record(
        session,
        incident,
        performer=performer,
        kind=TimelineKind.communication,
        action=f"Update to {audience.id} via {', '.join(audience.channels)}",
        data={"communication_id": communication.id, "audience": audience.id, "message": data.message},
        event="incident.communication",
    )
    return communication


def list_communications(session: Session, *, ref: str | int) -> list[CommunicationRead]:
    """The updates sent, oldest first, each with what became of it on each channel."""
    incident = get_incident(session, ref)
    rows = session.scalars(
        select(Communication).where(Communication.incident_id == incident.id).order_by(Communication.id)
    )
    return [
        CommunicationRead.model_validate(row).model_copy(
            update={"outcomes": notify_service.update_outcomes(session, row)}
        )
        for row in rows
    ]
