"""The updates of one intake transaction: several sets of changed columns in one batch, and several batches
(one per integration, as the intake writer applies them) in one transaction, each applied exactly once."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.alerts.conftest import make_key
from warroom.alerts import adapters, service
from warroom.alerts.models import Alert, AlertStatus
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.db import driver_query


def deliver(context: AppContext, batches: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Each (key, alerts) applied in turn, all in one transaction."""
    with context.db.write() as session:
        for key, alerts in batches:
            identity = integrations.identify_integration(session.connection(), key, IntegrationType.generic)
            service.ingest(
                session,
                org=context.org,
                source="generic",
                events=adapters.from_generic(alerts),
                integration=identity,
            )


def rows(context: AppContext) -> dict[str, Alert]:
    with context.db.read() as session:
        return {
            alert.summary.split()[0]: alert for alert in session.scalars(select(Alert).order_by(Alert.id))
        }


@pytest.mark.parametrize("copy_from_rows", [1, 10_000], ids=["copied", "row-by-row"])
def test_each_batch_of_changes_is_applied_once(
    context: AppContext, monkeypatch: pytest.MonkeyPatch, copy_from_rows: int
) -> None:
    # On PostgreSQL, large batches of updates go through a temporary table (COPY): both ways are tested.
    monkeypatch.setattr(service, "_COPY_FROM_ROWS", copy_from_rows)
    first, second = make_key(context, "generic", "first"), make_key(context, "generic", "second")
    deliver(
        context,
        [
            (
                first,
                [
                    {"summary": "x firing", "dedup_key": "x"},
                    {"summary": "y firing", "dedup_key": "y"},
                    {"summary": "z firing", "dedup_key": "z"},
                ],
            ),
            (second, [{"summary": "w firing", "dedup_key": "w"}]),
        ],
    )
    # One transaction: the first integration's batch changes three different sets of columns (an update,
    # an acknowledgement, a resolve); then the second integration's batch updates its own alert.
    deliver(
        context,
        [
            (
                first,
                [
                    {"summary": "x still firing", "dedup_key": "x", "severity": "critical"},
                    {"summary": "y firing", "dedup_key": "y", "status": "acknowledged"},
                    {"summary": "z firing", "dedup_key": "z", "status": "resolved"},
                ],
            ),
            (second, [{"summary": "w still firing", "dedup_key": "w"}]),
        ],
    )
    alerts = rows(context)
    x, y, z, w = alerts["x"], alerts["y"], alerts["z"], alerts["w"]
    assert (x.status, x.occurrences, x.summary, x.severity) == (
        AlertStatus.firing,
        2,
        "x still firing",
        "critical",
    )
    assert x.last_raw is not None and x.last_raw["summary"] == "x still firing"
    assert (y.status, y.occurrences) == (AlertStatus.acknowledged, 1) and y.acknowledged_at is not None
    assert (z.status, z.occurrences, z.open_dedup_key) == (AlertStatus.resolved, 1, None)
    assert z.resolved_at is not None
    assert (w.status, w.occurrences, w.summary) == (AlertStatus.firing, 2, "w still firing")

    # And again in a later transaction: nothing left over from the last one is applied twice.
    deliver(context, [(second, [{"summary": "w firing again", "dedup_key": "w"}])])
    assert rows(context)["w"].occurrences == 3
    assert rows(context)["x"].occurrences == 2


def _plan_nodes(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [node, *(n for child in node.get("Plans", []) for n in _plan_nodes(child))]


def test_open_alert_lookup_probes_the_index_per_key(context: AppContext) -> None:
    """The lookup of a batch's open alerts reads only those alerts, however many resolved alerts the
    integration has and whatever the planner's statistics say. Before, on a table it had never analysed,
    PostgreSQL scanned every alert of the integration and filtered by key."""
    key = make_key(context, "generic", "prometheus")
    deliver(context, [(key, [{"summary": f"{n} firing", "dedup_key": f"k{n}"} for n in range(3)])])
    with context.db.write() as session:
        connection = session.connection()
        if connection.dialect.name != "postgresql":
            pytest.skip("SQLite's planner takes the unique index for both columns without statistics")
        scope = session.scalar(select(Alert.scope))
        # A history of resolved alerts in the same scope (their open key is NULL), never analysed.
        columns = [column.name for column in Alert.__table__.columns if column.name != "id"]
        overrides = {"dedup_key": "'old-' || n", "open_dedup_key": "NULL", "status": "'resolved'"}
        connection.exec_driver_sql(
            f"INSERT INTO alerts ({', '.join(columns)}) "
            f"SELECT {', '.join(overrides.get(name, name) for name in columns)} "
            "FROM alerts, generate_series(1, 2000) AS n WHERE dedup_key = 'k0'"
        )
        assert scope is not None
        keys = ["k0", "k2", "never-seen"]
        found = service._open_alerts(connection, scope, keys)
        assert sorted(row[1] for row in found) == ["k0", "k2"]
        explained = driver_query(
            connection,
            "EXPLAIN (ANALYZE, FORMAT JSON) " + service._LOOKUP["postgresql"],
            {"scope": scope, "keys": sorted(keys)},
        )
    nodes = _plan_nodes(explained[0][0][0]["Plan"])
    probes = [n for n in nodes if n.get("Index Name") == "uq_alerts_scope_open_dedup_key"]
    assert probes and all("open_dedup_key" in n["Index Cond"] for n in probes), nodes
    assert sum(n.get("Rows Removed by Filter", 0) for n in nodes) == 0, nodes
