"""What alert intake counts for Prometheus (``/metrics``), so that Warroom's own alerting pipeline can be
watched: how many alerts arrive from each source and what they did, and how many deliveries were refused.

A refused delivery is an alert lost at the sender's side unless someone sees the sender's error log: a key
revoked by mistake, a payload a new Alertmanager version changed. ``warroom_alert_deliveries_rejected_total``
rising is the signal to alert on. Counters are per process; Prometheus sums them across processes.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Connection

from warroom.db import on_commit, schema_missing, unavailable
from warroom.errors import InvalidInput, WarroomError

ALERTS_RECEIVED = Counter(
    "warroom_alerts_received_total",
    "Alerts stored, by source and outcome: created, updated (a repeat), unchanged (a retried delivery), "
    "acknowledged, resolved, ignored (an end or acknowledgement of an alert that was not open).",
    ["source", "outcome"],
)
DELIVERIES_REJECTED = Counter(
    "warroom_alert_deliveries_rejected_total",
    "Intake deliveries refused, nothing of them stored, by source and reason (the error code: "
    "invalid_payload, unauthorized, forbidden, payload_too_large, rate_limited, unavailable, ...).",
    ["source", "reason"],
)
# The reasons of refusals that are not a domain error's code.
UNAVAILABLE = "unavailable"  # the database cannot be used right now (HTTP 503, SMTP 451)
INTERNAL = "internal"  # a fault in Warroom (HTTP 500)
INVALID_PAYLOAD = "invalid_payload"
RATE_LIMITED = "rate_limited"  # a public report over its client's limit (HTTP 429)
ALERTS_TRUNCATED = Counter(
    "warroom_alerts_truncated_total",
    "Alerts that senders said they left out of their notifications (Alertmanager's max_alerts), by source: "
    "summed over the notifications that changed something (an HA peer's copy, a retry or an unchanged repeat "
    "adds nothing), so a group left short in several notifications counts each time.",
    ["source"],
)

ENRICHMENT_ERRORS = Counter(
    "warroom_alert_enrichment_errors_total",
    "Fields of automation.enrich entries that failed on an arriving alert (the alert was stored without "
    "them), by entry.",
    ["entry"],
)

TEMPLATE_ERRORS = Counter(
    "warroom_rule_template_errors_total",
    "Rule templates (an incident title, a notify message) that failed on an alert's data; the alert's "
    "summary stood in, and the failure is on the alert and the incident's timeline. By template.",
    ["template"],
)

STORM_GUARDED = Counter(
    "warroom_alerts_storm_guarded_total",
    "Alerts that joined the newest open incident of their escalation policy instead of opening one, because "
    "automation.storm_guard's cap of new incidents was reached, by policy. Rising: a storm is being held.",
    ["policy"],
)


def count_refused(source: str, reason: str) -> None:
    """Count a delivery refused on an intake route (HTTP or mail), nothing of it stored."""
    DELIVERIES_REJECTED.labels(source, reason).inc()


def refusal_reason(exc: BaseException) -> str:
    """The reason a delivery that failed with ``exc`` is counted under: a domain error's code, else
    unavailable (a database that cannot be used, or without its tables: both a 503) or internal. A value a
    service refused (InvalidInput, code ``invalid``: an Opsgenie snooze ending more than 7 days ahead, a
    heartbeat signal that is not one) counts as invalid_payload, as a body the adapters refuse does: to the
    sender both are a delivery to change, and an alert on the reason should not need two names for it."""
    if isinstance(exc, InvalidInput):
        return INVALID_PAYLOAD
    if isinstance(exc, WarroomError):
        return exc.code
    return UNAVAILABLE if unavailable(exc) or schema_missing(exc) else INTERNAL


def count_storm_guarded(connection: Connection, policy: str) -> None:
    """Count an alert the storm guard held, once its transaction commits."""
    _count_when_committed(connection, STORM_GUARDED.labels, [policy])


def count_template_errors(connection: Connection, templates: Iterable[str]) -> None:
    """Count rule templates that failed on an alert, once the transaction that noted them commits."""
    _count_when_committed(connection, TEMPLATE_ERRORS.labels, templates)


def count_enrichment_errors(connection: Connection, entries: Iterable[str]) -> None:
    """Count the failed fields of enrichment entries once the batch's transaction commits."""
    _count_when_committed(connection, ENRICHMENT_ERRORS.labels, entries)


def count_received(connection: Connection, source: str, outcomes: Iterable[str]) -> None:
    """Count a batch's alerts once its transaction commits (a batch rolled back and retried counts once)."""
    _count_when_committed(connection, lambda outcome: ALERTS_RECEIVED.labels(source, outcome), outcomes)


def _count_when_committed(
    connection: Connection, counter_of: Callable[[str], Any], values: Iterable[str]
) -> None:
    tally = Tally(values)
    if tally:
        on_commit(connection, lambda: _add(counter_of, tally))


def _add(counter_of: Callable[[str], Any], tally: Tally[str]) -> None:
    for value, count in tally.items():
        counter_of(value).inc(count)
