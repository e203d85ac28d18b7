"""A page's timeline entries do not show a viewer a person's webhook URL (a credential in itself): the action
text showed it by its host, but the entry's ``data.recipient`` held the full URL, secret and all, for a page
that was sent and for one that became a dead letter."""

from __future__ import annotations

import json
from datetime import timedelta

from fastapi.testclient import TestClient

from tests.oncall.conftest import org  # noqa: F401  (a fixture: the example org, console channels)
from tests.oncall.test_dead_pages import hook, page_people_by
from tests.oncall.test_page_request import ask, paged_p1
from tests.oncall.test_paging import T0, run_at
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext


def test_a_viewer_reads_no_hook_url_in_a_pages_timeline_entries(
    api: TestClient,
    context: AppContext,
    pager: Recorder,
    responder: dict[str, str],
    viewer: dict[str, str],
    admin: dict[str, str],
) -> None:
    worker, incident_id = paged_p1(context)
    pager.fail("/deadhook?secret=DEAD", 10, status=404)  # refused: a dead letter at once
    page_people_by(
        context,
        {"frank": [hook(pager, "/zedhook?secret=ZED")], "grace": [hook(pager, "/deadhook?secret=DEAD")]},
    )
    clock.set(T0 + timedelta(minutes=1))
    for person in ("frank", "grace"):
        assert ask(api, responder, f"INC-{incident_id}", person=person, note="look").status_code == 202
    run_at(worker, T0 + timedelta(minutes=1))
    assert len(pager.to("/zedhook?secret=ZED")) == 1 and pager.to("/deadhook?secret=DEAD")

    read = api.get(f"/api/v1/incidents/INC-{incident_id}/timeline", headers=viewer)
    assert read.status_code == 200, read.text
    notifications = [e for e in read.json()["items"] if e["kind"] == "notification"]
    statuses = {e["data"]["status"] for e in notifications}
    assert {"sent", "dead"} <= statuses, notifications
    for entry in notifications:
        assert entry["data"]["recipient"] in (None, "") or "secret" not in entry["data"]["recipient"], entry
    assert "secret=" not in json.dumps(read.json())
    hooks = [e["data"]["recipient"] for e in notifications if "127.0.0.1" in (e["data"]["recipient"] or "")]
    assert hooks and set(hooks) == {"http://127.0.0.1/…"}, hooks
    # The full address stays in the delivery: responders read it shortened there too, admins whole.
    listed = api.get("/api/v1/notifications", params={"incident": f"INC-{incident_id}"}, headers=responder)
    assert listed.status_code == 200, listed.text
    assert "secret=" not in listed.text and "http://127.0.0.1/…" in listed.text
    listed = api.get("/api/v1/notifications", params={"incident": f"INC-{incident_id}"}, headers=admin)
    assert listed.status_code == 200, listed.text
    assert "/zedhook?secret=ZED" in listed.text
