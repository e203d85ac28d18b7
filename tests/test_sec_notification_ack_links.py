"""The notifications API (and ``warroom notify list/show`` through it) shows a page's acknowledge link
without its token: the token acknowledges as the person paged, so a responder who read another's page in the
log could acknowledge as them (``acknowledged_by: carol``). The delivered message keeps the link, a dead
letter retried too."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

import warroom.cli.oncall
from tests.oncall.conftest import oncall_cli, org  # noqa: F401  (fixtures)
from tests.oncall.test_dead_pages import hook, page_people_by
from tests.oncall.test_page_request import paged_p1
from tests.oncall.test_paging import T0, run_at
from tests.peers import Recorder
from warroom.cli.main import app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.notify.models import Delivery, DeliveryStatus

TOKEN = re.compile(r"/api/v1/ack/([A-Za-z0-9_.=~-]+)")


def page_rows(context: AppContext, incident_id: int, recipient_has: str = "") -> list[Delivery]:
    with context.db.read() as session:
        rows = session.scalars(
            select(Delivery).where(Delivery.incident_id == incident_id, Delivery.template == "page")
        )
        return [row for row in rows if recipient_has in row.recipient]


def test_a_responder_reading_notifications_gets_no_acknowledge_token(
    api: TestClient,
    context: AppContext,
    responder: dict[str, str],
    oncall_cli: CliRunner,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, incident_id = paged_p1(context)
    [carols] = page_rows(context, incident_id)
    [token] = TOKEN.findall(carols.body)  # the message sent to carol has her link
    assert token != "[hidden]"

    listed = api.get("/api/v1/notifications", params={"incident": f"INC-{incident_id}"}, headers=responder)
    assert listed.status_code == 200, listed.text
    assert token not in listed.text
    [item] = [i for i in listed.json()["items"] if i["id"] == carols.id]
    assert "/api/v1/ack/[hidden]" in item["body"], item["body"]
    shown = api.get(f"/api/v1/notifications/{carols.id}", headers=responder)
    assert shown.status_code == 200 and token not in shown.text and "/api/v1/ack/[hidden]" in shown.text

    # ``warroom notify`` answered by the test app as ``warroom oncall`` is (oncall_cli), as the responder.
    monkeypatch.setattr("warroom.cli.notify.Client", warroom.cli.oncall.Client)
    cli = oncall_cli.invoke(app, ["notify", "list", "--incident", f"INC-{incident_id}", "--json"])
    assert cli.exit_code == 0, cli.output
    assert token not in cli.output and "/api/v1/ack/[hidden]" in cli.output

    # The placeholder acknowledges nothing.
    assert api.post("/api/v1/ack/[hidden]").status_code >= 400
    assert (
        api.get(f"/api/v1/incidents/INC-{incident_id}", headers=responder).json()["acknowledged_at"] is None
    )


def test_a_dead_page_retried_still_carries_the_real_link(
    api: TestClient, context: AppContext, admin: dict[str, str], pager: Recorder
) -> None:
    pager.fail("/carol", 1, status=404)  # refused: a dead letter at once
    page_people_by(context, {"carol": [hook(pager, "/carol")]})
    worker, incident_id = paged_p1(context)
    [dead] = page_rows(context, incident_id, "/carol")
    assert dead.status == DeliveryStatus.dead, dead.last_error
    [token] = TOKEN.findall(dead.body)

    retried = api.post(f"/api/v1/notifications/{dead.id}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    assert token not in retried.text and "/api/v1/ack/[hidden]" in retried.json()["body"]
    clock.set(T0 + timedelta(seconds=5))
    run_at(worker, T0 + timedelta(seconds=5))
    [_refused, delivered] = pager.to("/carol")
    assert token.encode() in delivered.body, delivered.body[:500]
    [row] = page_rows(context, incident_id, "/carol")
    assert row.status == DeliveryStatus.sent and token in row.body
