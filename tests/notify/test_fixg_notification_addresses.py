"""A URL recipient (a webhook, a person's own contact URL: credentials) is shortened in the notifications API
for responders and viewers; admins, who can read the org file anyway, see it whole. Retries send to the
full address the row keeps."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from warroom.context import AppContext
from warroom.notify.enums import DeliveryStatus
from warroom.notify.models import Delivery

HOOK = "https://hooks.example.net/services/T000/B000/XXXXSECRETXXXX"


def _dead_delivery(context: AppContext) -> int:
    with context.db.write() as session:
        delivery = Delivery(
            channel="ops-webhook",
            channel_type="webhook",
            recipient=HOOK,
            template="test",
            subject="test",
            body="test",
            data={},
            status=DeliveryStatus.dead,
            attempts=5,
            last_error=f"{HOOK} answered 500",
        )
        session.add(delivery)
        session.flush()
        return delivery.id


def test_responders_see_url_recipients_shortened_admins_whole(
    context: AppContext, api: TestClient, responder: dict[str, str], admin: dict[str, str]
) -> None:
    delivery_id = _dead_delivery(context)
    for path in ("/api/v1/notifications", "/api/v1/notifications?status=dead"):
        listed = api.get(path, headers=responder)
        assert listed.status_code == 200, listed.text
        assert "SECRET" not in listed.text
        item = next(item for item in listed.json()["items"] if item["id"] == delivery_id)
        assert item["recipient"] == "https://hooks.example.net/…"
    one = api.get(f"/api/v1/notifications/{delivery_id}", headers=responder)
    assert one.status_code == 200 and "SECRET" not in one.text
    assert one.json()["recipient"] == "https://hooks.example.net/…"

    whole = api.get(f"/api/v1/notifications/{delivery_id}", headers=admin)
    assert whole.json()["recipient"] == HOOK
    listed = api.get("/api/v1/notifications", headers=admin).json()["items"]
    assert next(item for item in listed if item["id"] == delivery_id)["recipient"] == HOOK

    retried = api.post(f"/api/v1/notifications/{delivery_id}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    with context.db.read() as session:
        assert session.scalar(select(Delivery.recipient).where(Delivery.id == delivery_id)) == HOOK
