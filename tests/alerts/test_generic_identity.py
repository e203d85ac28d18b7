"""A plain JSON alert sent without a dedup key is identified by its labels and its type (its alertname), as
Alertmanager's fingerprint is: two problems on one host are two alerts."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from tests.alerts.test_source_ack import T0, incident
from warroom.alerts.adapters import from_generic, label_hash
from warroom.alerts.automation import moved_key
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext

DB_DOWN = {
    "summary": "db-9 primary is down",
    "type": "DBDown",
    "severity": "critical",
    "labels": {"host": "db-9"},
}
DISK_HIGH = {
    "summary": "db-9 disk 81% full",
    "type": "DiskHigh",
    "severity": "warning",
    "labels": {"host": "db-9"},
}


def send(api: TestClient, key: str, body: Any) -> list[dict[str, Any]]:
    response = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert response.status_code == 202, response.text
    answered: list[dict[str, Any]] = response.json()["alerts"]
    return answered


def stored(context: AppContext) -> list[Alert]:
    with context.db.read() as session:
        return list(session.scalars(select(Alert).order_by(Alert.id)))


def key_of(body: dict[str, Any]) -> str:
    [event] = from_generic(body)
    return event.dedup_key


def test_another_type_on_the_same_host_is_another_alert(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """QA: the disk warning updated the DBDown page and its resolve resolved it; the P1 went to monitoring
    while the database was still down."""
    clock.set(T0)
    [down] = send(api, generic_key, DB_DOWN)
    [disk] = send(api, generic_key, DISK_HIGH)
    [disk_ok] = send(api, generic_key, {**DISK_HIGH, "status": "resolved"})
    assert (down["outcome"], disk["outcome"], disk_ok["outcome"]) == ("created", "created", "resolved")
    assert disk["id"] != down["id"] and disk_ok["id"] == disk["id"]
    first, second = stored(context)
    assert (first.alert_type, first.status, first.severity, first.summary) == (
        "DBDown",
        "firing",
        "critical",
        "db-9 primary is down",
    )
    assert (second.alert_type, second.status) == ("DiskHigh", "resolved")
    assert first.incident_id is not None
    page = incident(context, first.incident_id)
    assert (page.severity, page.status) == ("P1", "investigating")


def test_the_same_type_and_labels_are_still_one_alert(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    answered = send(api, generic_key, [DISK_HIGH, {**DISK_HIGH, "summary": "db-9 disk 85% full"}])
    assert [a["outcome"] for a in answered] == ["created", "updated"]
    [resolved] = send(api, generic_key, {**DISK_HIGH, "status": "resolved"})
    assert resolved["outcome"] == "resolved" and resolved["id"] == answered[0]["id"]
    # A label that names the alert is its name: the type does not add a second one.
    named = {"summary": "queue slow", "type": "QueueSlow", "labels": {"alertname": "QueueSlow", "q": "a"}}
    assert key_of(named) == label_hash({"alertname": "QueueSlow", "q": "a"})
    # Nor do alerts without a type change key (no open alert of theirs needs a new one).
    assert key_of({"summary": "s", "labels": {"host": "db-9"}}) == label_hash({"host": "db-9"})
    assert key_of({"summary": "s", "service": "api"}) == label_hash({"service": "api"})


def test_alerts_without_labels_are_told_apart_by_summary_and_type(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    answered = send(
        api,
        generic_key,
        [
            {"summary": "backup failed", "type": "CronFailed"},
            {"summary": "cert expires in 3 days", "type": "CronFailed"},
            {"summary": "backup failed", "type": "BackupLate"},
            {"summary": "backup failed", "type": "CronFailed"},
        ],
    )
    assert [a["outcome"] for a in answered] == ["created", "created", "created", "unchanged"]
    assert key_of({"summary": "backup failed"}) == label_hash({"summary": "backup failed"})


def test_a_given_dedup_key_is_the_identity(api: TestClient, context: AppContext, generic_key: str) -> None:
    answered = send(api, generic_key, [{**DB_DOWN, "dedup_key": "db-9"}, {**DISK_HIGH, "dedup_key": "db-9"}])
    assert [(a["outcome"], a["dedup_key"]) for a in answered] == [("created", "db-9"), ("updated", "db-9")]


def downgrade_to_0036(context: AppContext) -> None:
    from alembic import command

    from warroom import migrate

    engine = context.db.engine
    with engine.begin() as connection:
        config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0036")


def upgrade_from_0036(context: AppContext) -> None:
    from warroom import migrate

    downgrade_to_0036(context)
    migrate.upgrade(context.db.engine)


def test_alerts_open_at_the_upgrade_are_found_by_their_new_key(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """An alert keyed the old way would not be found by its repeat after the upgrade: a second alert, whose
    resolve left the first firing for ever. Migration 0037 gives the open ones the new key."""
    clock.set(T0)
    [down] = send(api, generic_key, DB_DOWN)
    [disk] = send(api, generic_key, {**DISK_HIGH, "service": " database "})
    [no_labels] = send(api, generic_key, {"summary": "backup failed", "type": "CronFailed"})
    [named] = send(api, generic_key, {**DB_DOWN, "dedup_key": "db-9-down"})
    [untyped] = send(api, generic_key, {"summary": "fan loud", "labels": {"host": "db-8"}})
    [closed] = send(api, generic_key, {"summary": "old", "type": "Old", "labels": {"host": "db-1"}})
    send(
        api, generic_key, {"summary": "old", "type": "Old", "labels": {"host": "db-1"}, "status": "resolved"}
    )
    # As the release before keyed them: the labels (with the service), else the summary; no type.
    old_keys = {
        down["id"]: label_hash({"host": "db-9"}),
        disk["id"]: label_hash({"host": "db-9", "service": "database"}),
        no_labels["id"]: label_hash({"summary": "backup failed"}),
        closed["id"]: label_hash({"host": "db-1"}),
    }
    with context.db.write() as session:
        for alert_id, key in old_keys.items():
            resolved = alert_id == closed["id"]
            session.execute(
                update(Alert)
                .where(Alert.id == alert_id)
                .values(dedup_key=key, open_dedup_key=None if resolved else key)
            )
    upgrade_from_0036(context)

    after = {alert.id: alert for alert in stored(context)}
    for sent in (down, disk, no_labels, named, untyped):
        assert after[sent["id"]].dedup_key == after[sent["id"]].open_dedup_key == sent["dedup_key"]
    assert after[closed["id"]].dedup_key == old_keys[closed["id"]]  # history keeps its key

    clock.set(T0.replace(minute=5))
    [repeat] = send(api, generic_key, {**DB_DOWN, "summary": "db-9 primary still down"})
    assert (repeat["id"], repeat["outcome"]) == (down["id"], "updated")
    [disk_ok] = send(api, generic_key, {**DISK_HIGH, "service": "database", "status": "resolved"})
    assert (disk_ok["id"], disk_ok["outcome"]) == (disk["id"], "resolved")
    [backup_ok] = send(
        api, generic_key, {"summary": "backup failed", "type": "CronFailed", "status": "resolved"}
    )
    assert (backup_ok["id"], backup_ok["outcome"]) == (no_labels["id"], "resolved")
    [down_ok] = send(api, generic_key, {**DB_DOWN, "status": "resolved"})
    assert (down_ok["id"], down_ok["outcome"]) == (down["id"], "resolved")
    assert len(stored(context)) == 6


def test_an_open_alert_whose_new_key_is_taken_is_left_as_it_is(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    """One open alert per key and scope: an alert that names its alertname in a label may already have the
    key an open alert of the old style would get. Both stay as they are (the old one is resolved by hand)."""
    [typed] = send(api, generic_key, DB_DOWN)
    old = label_hash({"host": "db-9"})
    with context.db.write() as session:  # keyed as the release before did
        session.execute(
            update(Alert).where(Alert.id == typed["id"]).values(dedup_key=old, open_dedup_key=old)
        )
    [labelled] = send(
        api, generic_key, {"summary": "db-9 down", "labels": {"host": "db-9", "alertname": "DBDown"}}
    )
    assert labelled["outcome"] == "created" and labelled["dedup_key"] == typed["dedup_key"]
    upgrade_from_0036(context)
    assert {alert.id: alert.open_dedup_key for alert in stored(context)} == {
        typed["id"]: old,
        labelled["id"]: labelled["dedup_key"],
    }


def test_an_alert_moved_out_of_its_group_keeps_its_own_group_under_the_new_key(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    """A person's move gives an alert a group of its own named by its dedup key (0036): re-keyed, its later
    firings still go where it was moved, not back to the group's incident."""
    clock.set(T0)
    [down] = send(api, generic_key, DB_DOWN)
    [other] = send(
        api, generic_key, {**DB_DOWN, "labels": {"host": "db-8"}, "summary": "db-8 primary is down"}
    )
    moved = api.post(f"/api/v1/alerts/{down['id']}/promote", json={"move": True}, headers=responder)
    assert moved.status_code in (200, 201), moved.text
    after = {alert.id: alert for alert in stored(context)}
    own_group, own_incident, scope = (
        after[down["id"]].group_key,
        after[down["id"]].incident_id,
        after[down["id"]].scope,
    )
    assert own_incident != after[other["id"]].incident_id
    assert own_group is not None
    old = label_hash({"host": "db-9"})
    group = own_group.rsplit("|moved:", 1)[0]
    with (
        context.db.write() as session
    ):  # as the release before left it: keyed, and its group, without the type
        session.execute(
            update(Alert)
            .where(Alert.id == down["id"])
            .values(dedup_key=old, open_dedup_key=old, group_key=moved_key(group, scope, old))
        )
    upgrade_from_0036(context)
    assert stored(context)[0].group_key == own_group

    clock.set(T0.replace(minute=5))
    send(api, generic_key, {**DB_DOWN, "status": "resolved"})
    [again] = send(api, generic_key, DB_DOWN)
    assert again["outcome"] == "created" and again["incident"] == f"INC-{own_incident}"


def test_a_downgrade_gives_open_alerts_back_the_keys_the_release_before_finds(
    api: TestClient, context: AppContext, generic_key: str
) -> None:
    from warroom import migrate

    [down] = send(api, generic_key, DB_DOWN)
    downgrade_to_0036(context)
    assert [a.open_dedup_key for a in stored(context)] == [label_hash({"host": "db-9"})]
    migrate.upgrade(context.db.engine)
    assert [a.open_dedup_key for a in stored(context)] == [down["dedup_key"]]
