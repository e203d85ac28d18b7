"""A split by hand (``alerts promote --move``, ``alerts attach``) takes one alert and its later firings out of
its group; the group stays on the incident it was on."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_source_ack import T0, incident, pd, timeline
from warroom.alerts.models import Alert
from warroom.clock import clock
from warroom.context import AppContext


def cache_event(
    key: str, dedup_key: str, action: str = "trigger", component: str = "cache"
) -> dict[str, Any]:
    """QA's PagerDuty events: one group (the component, and the class as alert name) per region."""
    region = dedup_key.removeprefix("pd-").upper()
    return {
        "routing_key": key,
        "event_action": action,
        "dedup_key": dedup_key,
        "payload": {
            "summary": f"Cache evictions {region}",
            "source": f"cache-{region.lower()}",
            "severity": "critical",
            "component": component,
            "class": "CacheEvictions",
        },
    }


def newest(context: AppContext, dedup_key: str) -> tuple[int, int | None]:
    """The newest alert of a dedup key, and its incident."""
    with context.db.read() as session:
        alert = session.scalars(
            select(Alert).where(Alert.dedup_key == dedup_key).order_by(Alert.id.desc()).limit(1)
        ).one()
        return alert.id, alert.incident_id


def test_after_a_split_the_group_stays_on_its_incident_and_the_split_alert_on_its_own(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    pd(api, cache_event(pd_key, "pd-g"))  # EU
    pd(api, cache_event(pd_key, "pd-h"))  # US
    eu, us = newest(context, "pd-g"), newest(context, "pd-h")
    assert eu[1] == us[1] == 1  # one group, one incident

    clock.set(T0 + timedelta(minutes=2))
    moved = api.post(
        f"/api/v1/alerts/{us[0]}/promote",
        json={"move": True, "title": "US cache evictions"},
        headers=responder,
    )
    assert moved.status_code == 201, moved.text
    assert moved.json()["incident"] == "INC-2"

    # The US alert repeats: it updates the alert where it is now, the group's most recently seen.
    clock.set(T0 + timedelta(minutes=3))
    pd(api, cache_event(pd_key, "pd-h"))
    assert newest(context, "pd-h") == (us[0], 2)
    # A new alert of the group joins the group's incident, not the one the US alert was split into.
    pd(api, cache_event(pd_key, "pd-x"))  # APAC
    assert newest(context, "pd-x")[1] == 1

    clock.set(T0 + timedelta(minutes=5))
    for dedup_key in ("pd-g", "pd-h", "pd-x"):
        pd(api, cache_event(pd_key, dedup_key, "acknowledge"))
    clock.set(T0 + timedelta(minutes=10))
    for dedup_key in ("pd-g", "pd-h", "pd-x"):
        pd(api, cache_event(pd_key, dedup_key, "resolve"))
    assert incident(context, 1).status.value == incident(context, 2).status.value == "monitoring"

    # EU fires again: a new alert, back on INC-1, whose fix did not hold; INC-2 is left alone.
    clock.set(T0 + timedelta(minutes=20))
    pd(api, cache_event(pd_key, "pd-g"))
    eu_again = newest(context, "pd-g")
    assert eu_again[0] != eu[0] and eu_again[1] == 1
    assert incident(context, 1).status.value == "investigating"
    assert any(f"alert ALR-{eu_again[0]} fired while monitoring" in e.action for e in timeline(context, 1))
    assert incident(context, 2).status.value == "monitoring"

    # US fires again: its later firings follow it to the incident it was split into.
    clock.set(T0 + timedelta(minutes=21))
    pd(api, cache_event(pd_key, "pd-h"))
    us_again = newest(context, "pd-h")
    assert us_again[0] != us[0] and us_again[1] == 2
    assert incident(context, 2).status.value == "investigating"
    # ... and, being the group's most recent alert, it still does not pull the group there.
    clock.set(T0 + timedelta(minutes=22))
    pd(api, cache_event(pd_key, "pd-y"))
    assert newest(context, "pd-y")[1] == 1

    # Once the split-out incident is over, a later US firing opens an incident of its own: the split
    # holds, it does not go back into the group's.
    api.patch("/api/v1/incidents/INC-2", headers=responder, json={"status": "resolved", "note": "fixed"})
    clock.set(T0 + timedelta(minutes=30))
    pd(api, cache_event(pd_key, "pd-h"))
    assert newest(context, "pd-h")[1] == 3


def test_an_alert_attached_by_hand_elsewhere_leaves_its_group_behind(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    clock.set(T0)
    pd(api, cache_event(pd_key, "pd-g"))
    pd(api, cache_event(pd_key, "pd-h"))
    pd(api, cache_event(pd_key, "pd-db", component="database"))  # another group: INC-2
    us, db = newest(context, "pd-h"), newest(context, "pd-db")
    assert (us[1], db[1]) == (1, 2)

    clock.set(T0 + timedelta(minutes=2))
    attached = api.post(f"/api/v1/alerts/{us[0]}/attach", json={"incident": "INC-2"}, headers=responder)
    assert attached.status_code == 200, attached.text

    clock.set(T0 + timedelta(minutes=3))
    pd(api, cache_event(pd_key, "pd-h"))  # a repeat: the cache group's most recently seen alert is on INC-2
    pd(api, cache_event(pd_key, "pd-x"))  # a new alert of the cache group: its incident is INC-1 still
    assert newest(context, "pd-x")[1] == 1
    # The attached alert's later firing (a new alert once it resolved) goes where the person put it.
    pd(api, cache_event(pd_key, "pd-h", "resolve"))
    clock.set(T0 + timedelta(minutes=4))
    pd(api, cache_event(pd_key, "pd-h"))
    us_again = newest(context, "pd-h")
    assert us_again[0] != us[0] and us_again[1] == 2
    # Moved once more (back to INC-1 by hand), it keeps the group of its own, and follows the person's move.
    again = api.post(f"/api/v1/alerts/{us_again[0]}/attach", json={"incident": "INC-1"}, headers=responder)
    assert again.status_code == 200, again.text
    pd(api, cache_event(pd_key, "pd-h", "resolve"))
    clock.set(T0 + timedelta(minutes=5))
    pd(api, cache_event(pd_key, "pd-h"))
    assert newest(context, "pd-h")[1] == 1
    pd(api, cache_event(pd_key, "pd-z"))
    assert newest(context, "pd-z")[1] == 1


def test_a_split_made_before_the_upgrade_takes_its_alert_out_of_the_group(
    api: TestClient, context: AppContext, pd_key: str, responder: dict[str, str]
) -> None:
    """QA's upgrade: an alert split out by the release before kept its group's key, so the group's next alerts
    went to the incident it was split into. Migration 0036 gives it (and its firings there) its own group."""
    from alembic import command
    from sqlalchemy import update

    from warroom import migrate

    clock.set(T0)
    pd(api, cache_event(pd_key, "pd-g"))
    pd(api, cache_event(pd_key, "pd-h"))
    eu, us = newest(context, "pd-g"), newest(context, "pd-h")
    clock.set(T0 + timedelta(minutes=2))
    moved = api.post(f"/api/v1/alerts/{us[0]}/promote", json={"move": True}, headers=responder)
    assert moved.status_code in (200, 201), moved.text
    with context.db.write() as session:  # as the release before left it: the group's own key
        plain = session.scalar(select(Alert.group_key).where(Alert.id == eu[0]))
        session.execute(update(Alert).where(Alert.id == us[0]).values(group_key=plain))
    engine = context.db.engine
    with engine.begin() as connection:
        config = migrate.alembic_config(engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0035")
    migrate.upgrade(engine)
    with context.db.read() as session:
        assert session.scalar(select(Alert.group_key).where(Alert.id == us[0])) != plain
    clock.set(T0 + timedelta(minutes=3))
    pd(api, cache_event(pd_key, "pd-x"))  # APAC: a new alert of the group
    assert newest(context, "pd-x")[1] == eu[1] == 1
