"""Inhibit rules (``automation.inhibit_rules``): while an open alert matches a rule's source, new alerts
matching its target with the same ``equal`` labels are recorded but not acted on, as in Alertmanager. A node
that is down pages once, not once per service on it.

A new alert looks for its inhibitor among the newest open alerts when automation first sees it
(``automation.on_created``); when the inhibitor resolves, the alerts it held that are still open are routed
as if they had just fired (``automation.on_resolved``). On PostgreSQL the inhibitor's row is locked ``FOR
SHARE`` in the new alert's transaction: a concurrent resolve waits for it and then finds the new alert to
release, or commits first and is no longer chosen. No alert is held by an alert that has resolved.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, or_, select, true
from sqlalchemy.orm import Session

from warroom.alerts.config import AlertFacts, InhibitRule
from warroom.alerts.models import Alert, AlertStatus
from warroom.auth import integrations
from warroom.orgconfig import OrgConfig

# The newest open alerts looked at for an inhibitor (narrowed first by what the rules' source conditions and
# equal labels say in SQL): an inhibitor is an alert that fires now, so it is recent.
CANDIDATES = 1000
_OPEN = (AlertStatus.firing, AlertStatus.acknowledged)


def _could_inhibit(rules: list[InhibitRule], target: AlertFacts) -> ColumnElement[bool]:
    """What an open alert must be, in SQL, to inhibit ``target`` by one of ``rules``: the columns and labels
    each rule's source names, and the target's own values of its ``equal`` labels. Necessary, not sufficient
    (regexes and missing labels are checked in Python): during a storm it keeps the inhibitor among the
    candidates however many other alerts are open."""
    per_rule = []
    for rule in rules:
        source = rule.source
        conditions: list[ColumnElement[bool]] = [
            column.in_(sorted(values))
            for column, values in (
                (Alert.alert_type, source.type),
                (Alert.source, source.source),
                (Alert.service, source.service),
                (Alert.severity, list(source.severity)),
            )
            if values
        ]
        conditions += [Alert.labels[name].as_string() == value for name, value in source.labels.items()]
        # A label both lack counts as equal, so only a value the target has narrows.
        conditions += [
            Alert.labels[name].as_string() == value
            for name in rule.equal
            if (value := target.labels.get(name))
        ]
        per_rule.append(and_(true(), *conditions))
    return or_(*per_rule)


def inhibitor(
    session: Session, org: OrgConfig, alert: AlertFacts, *, exclude_id: int | None = None, lock: bool = False
) -> tuple[int, str] | None:
    """The newest open alert that inhibits an alert like ``alert``, and the rule's name; None if none does.
    ``lock``: take the inhibitor's row ``FOR SHARE`` (PostgreSQL), so it cannot resolve unseen."""
    rules = [rule for rule in org.automation.inhibit_rules if rule.target.accepts(alert)]
    if not rules:
        return None
    statement = select(
        Alert.id,
        Alert.source,
        Alert.severity,
        Alert.alert_type,
        Alert.service,
        Alert.labels,
        Alert.integration_id,
    ).where(Alert.status.in_(_OPEN))
    if exclude_id is not None:
        statement = statement.where(Alert.id != exclude_id)
    statement = statement.where(_could_inhibit(rules, alert)).order_by(Alert.id.desc()).limit(CANDIDATES)
    # The candidates' integration names, only when a rule's source condition names integrations.
    names = integrations.names_by_id(session) if any(rule.source.integrations for rule in rules) else {}
    for row in session.execute(statement).all():
        integration = names.get(row.integration_id) if row.integration_id is not None else None
        candidate = AlertFacts(row.source, row.severity, row.alert_type, row.service, row.labels, integration)
        rule = next((rule for rule in rules if rule.pairs(candidate, alert)), None)
        if rule is None:
            continue
        if lock and not _still_open(session, row.id):
            continue  # it resolved since the lookup began
        return row.id, rule.name
    return None


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
