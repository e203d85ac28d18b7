"""What alert intake counts for Prometheus (``/metrics``), so that Warroom's own alerting pipeline can be
watched: how many alerts arrive from each source and what they did, and how many deliveries were refused.

A refused delivery is an alert lost at the sender's side unless someone sees the sender's error log: a key
revoked by mistake, a payload a new Alertmanager version changed. ``warroom_alert_deliveries_rejected_total``
rising is the signal to alert on. Counters are per process; Prometheus sums them across processes.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable

from prometheus_client import Counter
from sqlalchemy import Connection

from warroom.db import on_commit

ALERTS_RECEIVED = Counter(
    "warroom_alerts_received_total",
    "Alerts stored, by source and outcome: created, updated (a repeat), unchanged (a retried delivery), "
    "acknowledged, resolved, ignored (an end or acknowledgement of an alert that was not open).",
    ["source", "outcome"],
)
DELIVERIES_REJECTED = Counter(
    "warroom_alert_deliveries_rejected_total",
    "Intake deliveries refused, nothing of them stored, by source and reason (the error code: "
    "invalid_payload, unauthorized, forbidden, payload_too_large, unavailable, ...).",
    ["source", "reason"],
)
ALERTS_TRUNCATED = Counter(
    "warroom_alerts_truncated_total",
    "Alerts that senders left out of their notifications (Alertmanager's max_alerts), by source.",
    ["source"],
)


def count_received(connection: Connection, source: str, outcomes: Iterable[str]) -> None:
    """Count a batch's alerts once its transaction commits (a batch rolled back and retried counts once)."""
    tally = Tally(outcomes)
    if tally:
        on_commit(connection, lambda: _add(source, tally))


def _add(source: str, tally: Tally[str]) -> None:
    for outcome, count in tally.items():
        ALERTS_RECEIVED.labels(source, outcome).inc(count)
