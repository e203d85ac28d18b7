"""Following the newest-first lists from a script: a keyset cursor (``before_id``) that new rows do not
shift, ``offset`` on every such list, periods given as a time as well as a duration (``since``, ``until``),
validation errors that name the query parameter, one message for the bound of a period, and one answer (404)
for an incident that does not exist in any list's filter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import delete

from tests.alerts.conftest import make_key
from warroom.alerts.models import ChangeEvent
from warroom.clock import clock
from warroom.context import AppContext

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def ids(answer: Any) -> list[int]:
    assert answer.status_code == 200, answer.text
    rows = answer.json()["items"]  # every list newest first answers a page
    return [row["number"] if "number" in row else row["id"] for row in rows]


def post_alerts(api: TestClient, key: str, count: int, start: int = 0) -> None:
    for number in range(start, start + count):
        sent = api.post(
            f"/api/v1/alerts?key={key}",
            json={"summary": f"disk {number}", "dedup_key": f"disk-{number}", "severity": "info"},
        )
        assert sent.status_code == 202, sent.text


def test_a_cursor_follows_alerts_unshifted_by_new_ones(
    api: TestClient, context: AppContext, viewer: dict[str, str]
) -> None:
    """``?limit=5`` gave 37..33; three alerts came in; ``?limit=5&offset=5`` gave 35..31 (two seen twice)."""
    key = make_key(context, "generic", "scripts")
    post_alerts(api, key, 12)
    first = ids(api.get("/api/v1/alerts", params={"limit": 5}, headers=viewer))
    assert first == [12, 11, 10, 9, 8]
    post_alerts(api, key, 3, start=100)
    following = api.get("/api/v1/alerts", params={"limit": 5, "before_id": first[-1]}, headers=viewer)
    assert ids(following) == [7, 6, 5, 4, 3]
    assert following.json()["total"] == 7  # what is left from the cursor on, as any filter counts
    last = ids(api.get("/api/v1/alerts", params={"limit": 5, "before_id": 3}, headers=viewer))
    assert last == [2, 1]
    # With the other filters, and a cursor past every id starts from the newest.
    firing = api.get(
        "/api/v1/alerts", params={"before_id": 2147483647, "limit": 2, "firing": "true"}, headers=viewer
    )
    assert ids(firing) == [15, 14]


def test_every_newest_first_list_takes_a_cursor_and_an_offset(
    api: TestClient,
    context: AppContext,
    viewer: dict[str, str],
    responder: dict[str, str],
    admin: dict[str, str],
) -> None:
    for number in range(4):
        created = api.post(
            "/api/v1/incidents", json={"title": f"outage {number}", "severity": "P3"}, headers=responder
        )
        assert created.status_code == 201, created.text
        sent = api.post("/api/v1/notifications/test", json={"channel": "console"}, headers=admin)
        assert sent.status_code == 202, sent.text
        change = api.post("/api/v1/changes", json={"summary": f"deploy {number}"}, headers=responder)
        assert change.status_code == 201, change.text
    incidents = ids(api.get("/api/v1/incidents", headers=viewer))
    assert (
        ids(api.get("/api/v1/incidents", params={"before_id": incidents[1]}, headers=viewer)) == incidents[2:]
    )
    notifications = ids(api.get("/api/v1/notifications", headers=responder))
    assert len(notifications) >= 4
    after = api.get("/api/v1/notifications", params={"before_id": notifications[1]}, headers=responder)
    assert ids(after) == notifications[2:]
    changes = ids(api.get("/api/v1/changes", headers=viewer))
    assert changes == [4, 3, 2, 1]
    assert ids(api.get("/api/v1/changes", params={"before_id": 3}, headers=viewer)) == [2, 1]
    assert ids(api.get("/api/v1/changes", params={"offset": 1, "limit": 2}, headers=viewer)) == [3, 2]
    jobs = ids(api.get("/api/v1/jobs", headers=admin))
    assert len(jobs) >= 3
    assert ids(api.get("/api/v1/jobs", params={"before_id": jobs[0]}, headers=admin)) == jobs[1:]
    assert ids(api.get("/api/v1/jobs", params={"offset": 1, "limit": 1}, headers=admin)) == jobs[1:2]
    # A cursor is an id: 0, a word, or one past 32 bits is refused naming it.
    for bad in ("0", "INC-3", "2147483648"):
        refused = api.get("/api/v1/incidents", params={"before_id": bad}, headers=viewer)
        assert refused.status_code == 422, refused.text
        assert [entry["field"] for entry in refused.json()["error"]["details"]] == ["before_id"]
    # Unknown parameters are still refused, naming the new ones among those taken.
    typo = api.get("/api/v1/jobs", params={"before": 3}, headers=admin)
    assert typo.status_code == 422 and "before_id" in typo.json()["error"]["details"][0]["allowed"]
    twice = api.get("/api/v1/changes?before_id=3&before_id=2", headers=viewer)
    assert twice.status_code == 422 and twice.json()["error"]["details"][0]["field"] == "before_id"


def test_changes_are_paged_in_the_order_they_happened(
    api: TestClient, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """Changes are listed by when they happened, not by id: a deploy reported late sorts among its time's."""
    clock.set(T0)
    for summary, minutes_ago in (("a", 10), ("b", 30), ("late", 20), ("c", 5)):
        happened = (T0 - timedelta(minutes=minutes_ago)).isoformat()
        body = {"summary": summary, "happened_at": happened}
        assert api.post("/api/v1/changes", json=body, headers=responder).status_code == 201
    # CHG-4 (5 min ago), CHG-1 (10), CHG-3 (20), CHG-2 (30)
    assert ids(api.get("/api/v1/changes", headers=viewer)) == [4, 1, 3, 2]
    assert ids(api.get("/api/v1/changes", params={"before_id": 1}, headers=viewer)) == [3, 2]
    assert ids(api.get("/api/v1/changes", params={"before_id": 3}, headers=viewer)) == [2]
    # A cursor no longer stored was pruned with everything older; one past every id is before them all.
    assert ids(api.get("/api/v1/changes", params={"before_id": 99}, headers=viewer)) == [4, 1, 3, 2]


def test_a_page_of_changes_counts_what_the_filters_and_cursor_select(
    api: TestClient, context: AppContext, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    """``/api/v1/changes`` answered a bare list that nothing counted: a script could not tell the last page
    from a full one. Its ``total`` is what the period, the service and ``before_id`` select, before ``limit``
    and ``offset``."""
    clock.set(T0)
    for summary, service, minutes_ago in (
        ("a", "api", 10),
        ("b", None, 30),
        ("late", "database", 20),
        ("c", "api", 5),
        ("old", "api", 30 * 60),  # before the default day
    ):
        happened = (T0 - timedelta(minutes=minutes_ago)).isoformat()
        body = {"summary": summary, "service": service, "happened_at": happened}
        assert api.post("/api/v1/changes", json=body, headers=responder).status_code == 201

    def page(**params: Any) -> tuple[list[int], int]:
        answer = api.get("/api/v1/changes", params=params, headers=viewer)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["limit"], body["offset"]) == (params.get("limit", 50), params.get("offset", 0))
        return [row["id"] for row in body["items"]], body["total"]

    # CHG-4 (5 min ago), CHG-1 (10), CHG-3 (20), CHG-2 (30); CHG-5 a day and more ago.
    assert page() == ([4, 1, 3, 2], 4)
    assert page(limit=2) == ([4, 1], 4)
    assert page(limit=2, offset=1) == ([1, 3], 4)
    assert page(offset=10) == ([], 4)
    assert page(since="2d") == ([4, 1, 3, 2, 5], 5)
    assert page(since="2d", until="1h") == ([5], 1)
    assert page(service="api") == ([4, 1, 2], 3)  # its own and those naming none
    assert page(service="api", limit=1, offset=1) == ([1], 3)
    # With the cursor, what is left after it, in the order they happened.
    assert page(before_id=1) == ([3, 2], 2)
    assert page(before_id=1, offset=1) == ([2], 2)
    assert page(before_id=1, service="database", limit=1) == ([3], 2)
    assert page(before_id=2, since="2d") == ([5], 1)
    assert page(before_id=99) == ([4, 1, 3, 2], 4)  # past every id: before them all
    # A cursor no longer stored (pruned for its age, and every older change with it): nothing is left.
    with context.db.write() as session:
        session.execute(delete(ChangeEvent).where(ChangeEvent.id == 3))
    assert page(before_id=3) == ([], 0)
    assert page(before_id=3, since="2d", offset=1) == ([], 0)
    assert page(before_id=1) == ([2], 1)


def test_a_period_may_be_given_as_times_and_may_end(
    api: TestClient, context: AppContext, viewer: dict[str, str], responder: dict[str, str]
) -> None:
    key = make_key(context, "generic", "scripts")
    for hours_ago in (50, 30, 10):
        clock.set(T0 - timedelta(hours=hours_ago))
        post_alerts(api, key, 1, start=hours_ago)
        body = {"summary": f"deploy {hours_ago}h ago", "happened_at": clock.now().isoformat()}
        assert api.post("/api/v1/changes", json=body, headers=responder).status_code == 201
    clock.set(T0)

    def listed(path: str, **params: str) -> list[int]:
        return ids(api.get(path, params=params, headers=viewer))

    assert listed("/api/v1/alerts", since="2026-12-06T00:00:00Z") == [3, 2]
    assert listed("/api/v1/alerts", since="2026-12-06T00:00:00Z", until="2026-12-06T12:00:00+02:00") == [2]
    assert listed("/api/v1/alerts", until="20h") == [2, 1]
    assert listed("/api/v1/alerts", since="40h", until="20h") == [2]
    # Changes: the day before now by default, the day before until when only until is given.
    assert listed("/api/v1/changes") == [3]
    assert listed("/api/v1/changes", since="2026-12-01T00:00:00Z") == [3, 2, 1]
    assert listed("/api/v1/changes", until="2026-12-06T11:00:00Z") == [2]
    assert listed("/api/v1/changes", since="60h", until="40h") == [1]
    for path in ("/api/v1/alerts", "/api/v1/changes"):
        backwards = api.get(path, params={"since": "1h", "until": "2h"}, headers=viewer)
        assert backwards.status_code == 422, backwards.text
        assert backwards.json()["error"]["details"][0]["field"] == "until"
        naive = api.get(path, params={"since": "2026-12-06T00:00:00"}, headers=viewer)
        assert naive.status_code == 422 and "offset" in naive.json()["error"]["message"], naive.text
    around = api.get("/api/v1/changes", params={"incident": "INC-1", "until": "1h"}, headers=viewer)
    assert around.status_code == 422 and "until" in around.json()["error"]["message"]


@pytest.mark.parametrize("since", ["0s", "1000d", "100000d", "99999999999999999999d", "P999999999D"])
def test_the_bound_of_a_period_is_told_one_way(api: TestClient, viewer: dict[str, str], since: str) -> None:
    """1000d said "since must be between 1s and 366d", 100000d "too long a duration (at most 36500d)"."""
    for path in ("/api/v1/alerts", "/api/v1/changes", "/api/v1/alerts/noise", "/api/v1/alerts/overview"):
        refused = api.get(path, params={"since": since}, headers=viewer)
        assert refused.status_code == 422, refused.text
        [entry] = refused.json()["error"]["details"]
        assert entry["field"] == "since" and "is out of range" in entry["message"], entry
        assert "from 1s to 366d" in entry["message"] and "36500d" not in entry["message"], entry


def test_a_bad_value_of_a_repeated_parameter_is_named_by_the_parameter(
    api: TestClient, viewer: dict[str, str]
) -> None:
    """``field`` was ``status.0`` / ``status.1``: the README says it is the query parameter."""
    one = api.get("/api/v1/incidents", params={"status": "bogus"}, headers=viewer)
    assert one.status_code == 422, one.text
    [entry] = one.json()["error"]["details"]
    assert (entry["field"], entry["index"]) == ("status", 0)
    assert one.json()["error"]["message"].startswith("status: ")
    second = api.get("/api/v1/alerts?status=firing&status=bogus", headers=viewer)
    [entry] = second.json()["error"]["details"]
    assert (entry["field"], entry["index"]) == ("status", 1) and "firing" in entry["allowed"]
    # A single value has no index; a body's field keeps its path.
    limit = api.get("/api/v1/alerts", params={"limit": "lots"}, headers=viewer)
    assert limit.json()["error"]["details"][0].keys() == {"field", "message"}


def test_an_incident_that_does_not_exist_is_a_404_in_every_lists_filter(
    api: TestClient, viewer: dict[str, str], responder: dict[str, str], admin: dict[str, str]
) -> None:
    for path, headers in (
        ("/api/v1/alerts", viewer),
        ("/api/v1/notifications", responder),
        ("/api/v1/changes", viewer),
        ("/api/v1/jobs", admin),
    ):
        missing = api.get(path, params={"incident": "INC-999"}, headers=headers)
        assert missing.status_code == 404, (path, missing.text)
        assert "INC-999" in missing.json()["error"]["message"], (path, missing.text)
