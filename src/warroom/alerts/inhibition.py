"""Inhibit rules (``automation.inhibit_rules``): while an open alert matches a rule's source, new alerts
matching its target with the same ``equal`` labels are recorded but not acted on, as in Alertmanager. A node
that is down pages once, not once per service on it.

A new alert looks for its inhibitor among the newest open alerts when automation first sees it
(``automation.on_created``); when the inhibitor resolves, the alerts it held that are still open are routed
as if they had just fired (``service.release_muted``), whether or not the inhibitor was held itself. On
PostgreSQL the inhibitor's row is locked ``FOR SHARE`` in the new alert's transaction: a concurrent resolve
waits for it and then finds the new alert to release, or commits first and is no longer chosen. No alert is
held by an alert that has resolved.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from warroom.alerts.config import AlertFacts, RuleMatch
from warroom.alerts.models import FACT_COLUMNS, Alert, AlertStatus
from warroom.auth import integrations
from warroom.orgconfig import OrgConfig

# The newest open alerts looked at for an inhibitor (narrowed first by what the rules' source conditions and
# equal labels say in SQL): an inhibitor is an alert that fires now, so it is recent.
CANDIDATES = 1000
_OPEN = (AlertStatus.firing, AlertStatus.acknowledged)
# A delivery with at least this many new alerts has their inhibitors looked up once (``BatchInhibitors``).
BATCH_FROM = 50


def _narrowing(match: RuleMatch, equal: list[str], other: AlertFacts) -> ColumnElement[bool]:
    """What an open alert must be, in SQL, to meet ``match`` and share ``other``'s values of the ``equal``
    labels. Necessary, not sufficient (regexes and missing labels are checked in Python): during a storm it
    keeps the alert looked for among the candidates however many other alerts are open."""
    conditions: list[ColumnElement[bool]] = [
        column.in_(sorted(values))
        for column, values in (
            (Alert.alert_type, match.type),
            (Alert.source, match.source),
            (Alert.service, match.service),
            (Alert.severity, list(match.severity)),
        )
        if values
    ]
    conditions += [_label_is(name, value) for name, value in match.labels.items()]
    # A label both lack counts as equal, so only a value the other alert has narrows.
    conditions += [_label_is(name, value) for name in equal if (value := other.label(name))]
    return and_(true(), *conditions)


def _label_is(name: str, value: str) -> ColumnElement[bool]:
    """An alert's label is ``value``, in SQL, as conditions read labels (``AlertFacts.label``): an alertname
    may be the alert's type (a superset, as narrowing may be: Python checks the rest)."""
    labelled = Alert.labels[name].as_string() == value
    return or_(labelled, Alert.alert_type == value) if name == "alertname" else labelled


_CANDIDATE_COLUMNS = (Alert.id, *FACT_COLUMNS, Alert.incident_id)


def _candidates(
    session: Session, narrowing: ColumnElement[bool], exclude_id: int | None, names_needed: bool, limit: int
) -> list[tuple[Any, AlertFacts]]:
    """The newest open alerts that pass ``narrowing``, each with its facts (integration names when asked)."""
    statement = select(*_CANDIDATE_COLUMNS).where(Alert.status.in_(_OPEN), narrowing)
    if exclude_id is not None:
        statement = statement.where(Alert.id != exclude_id)
    names = integrations.names_by_id(session, needed=names_needed)
    found = []
    for row in session.execute(statement.order_by(Alert.id.desc()).limit(limit)).all():
        integration = names.of(row.integration_id)
        found.append(
            (row, AlertFacts(row.source, row.severity, row.alert_type, row.service, row.labels, integration))
        )
    return found


def inhibitor(
    session: Session, org: OrgConfig, alert: AlertFacts, *, exclude_id: int | None = None, lock: bool = False
) -> tuple[int, str] | None:
    """The newest open alert that inhibits an alert like ``alert``, and the rule's name; None if none does.
    ``lock``: take the inhibitor's row ``FOR SHARE`` (PostgreSQL), so it cannot resolve unseen."""
    rules = [rule for rule in org.automation.inhibit_rules if rule.target.accepts(alert)]
    if not rules:
        return None
    narrowing = or_(*(_narrowing(rule.source, rule.equal, alert) for rule in rules))
    names_needed = any(rule.source.integrations for rule in rules)
    for row, candidate in _candidates(session, narrowing, exclude_id, names_needed, CANDIDATES):
        rule = next((rule for rule in rules if rule.pairs(candidate, alert)), None)
        if rule is None:
            continue
        if lock and not _still_open(session, row.id):
            continue  # it resolved since the lookup began
        return row.id, rule.name
    return None


class BatchInhibitors:
    """The inhibitors of one delivery's new alerts, found with one query instead of one per alert (a storm's
    group of 16,000 alerts is one delivery: looked up alert by alert, each scan of the open alerts' labels
    grew with the alerts of the group inserted before it).

    It holds every open alert that meets some rule's source (as ``_narrowing`` reads it in SQL, without the
    equal labels), indexed per rule by its values of the rule's ``equal`` labels. ``inhibitor`` then answers
    as the module's ``inhibitor`` does: the newest of them (the delivery's own new alerts included, as they
    are inserted before any is routed) that some rule pairs with the alert, and the first such rule. Unlike
    it, it does not stop at the newest ``CANDIDATES`` alerts: it finds the inhibitor however many share its
    equal labels. The open alerts do not change while the delivery's alerts are routed (their statuses were
    written first), so one look serves them all."""

    def __init__(self, session: Session, org: OrgConfig) -> None:
        self._session = session
        self._rules = org.automation.inhibit_rules
        self._locked: set[int] = set()
        # Per rule (by position): equal-label values -> candidates, newest first.
        self._index: list[dict[tuple[str, ...], list[tuple[int, AlertFacts]]]] = [{} for _ in self._rules]
        if not self._rules:
            return
        narrowing = or_(*(_narrowing(rule.source, [], _NO_FACTS) for rule in self._rules))
        names_needed = any(rule.source.integrations for rule in self._rules)
        statement = select(*_CANDIDATE_COLUMNS).where(Alert.status.in_(_OPEN), narrowing)
        names = integrations.names_by_id(session, needed=names_needed)
        for row in session.execute(statement.order_by(Alert.id.desc())).all():
            facts = AlertFacts(
                row.source,
                row.severity,
                row.alert_type,
                row.service,
                row.labels,
                names.of(row.integration_id),
            )
            for number, rule in enumerate(self._rules):
                if rule.source.accepts(facts):
                    self._index[number].setdefault(_equal_values(rule.equal, facts), []).append(
                        (row.id, facts)
                    )

    def inhibitor(self, alert: AlertFacts, *, exclude_id: int, lock: bool = False) -> tuple[int, str] | None:
        """As the module's ``inhibitor`` (``lock`` included: each inhibitor's row is locked once)."""
        rules = [(number, rule) for number, rule in enumerate(self._rules) if rule.target.accepts(alert)]
        while rules:
            found: tuple[int, str] | None = None
            for number, rule in rules:
                for candidate_id, candidate in self._index[number].get(_equal_values(rule.equal, alert), ()):
                    if found is not None and candidate_id <= found[0]:
                        break  # newest first: no newer one left under this rule
                    if candidate_id != exclude_id and rule.pairs(candidate, alert):
                        # The first rule (in the file's order) that pairs this candidate names it, as the
                        # module's ``inhibitor`` has it.
                        name = next(r.name for _, r in rules if r.pairs(candidate, alert))
                        found = (candidate_id, name)
                        break
            if found is None:
                return None
            if not lock or found[0] in self._locked or _still_open(self._session, found[0]):
                self._locked.add(found[0])
                return found
            self._drop(found[0])  # it resolved since the lookup (PostgreSQL): the next one is looked at
        return None

    def forget_locks(self) -> None:
        """A routing savepoint was rolled back (and with it, on PostgreSQL, the row locks it took)."""
        self._locked.clear()

    def _drop(self, alert_id: int) -> None:
        for by_values in self._index:
            for values, candidates in by_values.items():
                by_values[values] = [c for c in candidates if c[0] != alert_id]


_NO_FACTS = AlertFacts("", "", "", None, {})


def _equal_values(equal: list[str], facts: AlertFacts) -> tuple[str, ...]:
    """An alert's values of a rule's ``equal`` labels, as ``InhibitRule.pairs`` compares them (a missing
    label is empty)."""
    return tuple(facts.label(name) or "" for name in equal)


def _still_open(session: Session, alert_id: int) -> bool:
    statement = (
        select(Alert.id).where(Alert.id == alert_id, Alert.status.in_(_OPEN)).with_for_update(read=True)
    )
    return session.scalar(statement) is not None


def inhibited_now(session: Session, alert: Alert) -> bool:
    """Whether an alert on no incident is held by an inhibitor that is still open."""
    if alert.inhibited_by_id is None or alert.incident_id is not None:
        return False
    status = session.scalar(select(Alert.status).where(Alert.id == alert.inhibited_by_id))
    return status in _OPEN


# The open alerts on incidents looked at when an inhibitor fires after its symptoms (noted, not moved).
SYMPTOMS = 50


def symptoms(
    session: Session, org: OrgConfig, alert: AlertFacts, *, exclude_id: int
) -> list[tuple[int, int, str]]:
    """The open alerts already on incidents that ``alert`` would have inhibited had it fired first: (alert id,
    incident id, rule name), newest first. Alertmanager mutes them from now on; Warroom has paged for them
    already, so their incidents are told what they are a symptom of."""
    rules = [rule for rule in org.automation.inhibit_rules if rule.source.accepts(alert)]
    if not rules:
        return []
    narrowing = or_(*(_narrowing(rule.target, rule.equal, alert) for rule in rules))
    names_needed = any(rule.target.integrations for rule in rules)
    found = []
    for row, candidate in _candidates(session, narrowing, exclude_id, names_needed, CANDIDATES):
        if row.incident_id is None:
            continue
        rule = next((rule for rule in rules if rule.pairs(alert, candidate)), None)
        if rule is not None:
            found.append((row.id, row.incident_id, rule.name))
            if len(found) == SYMPTOMS:
                break
    return found
