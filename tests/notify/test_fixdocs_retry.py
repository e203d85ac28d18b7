"""A dead notification retried by hand and then sent drops the error of its failed attempts: ``notify list``
showed "sent" beside the stale error. The attempts that failed stay on the incident's timeline."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.notify.test_delivery import START, delivery, notification_entries, open_incident, send
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.models import DeliveryStatus


def test_a_retried_dead_letter_that_is_sent_keeps_no_error(
    context: AppContext, api: TestClient, admin: dict[str, str], recorder: Recorder
) -> None:
    clock.set(START)
    context.settings.notify_max_attempts = 1
    recorder.fail("/hook", 1, status=500)
    incident_id = open_incident(context)
    delivery_id = send(context, channel="ops-webhook", to="", template="test", incident_id=incident_id)
    worker = Worker(context)
    worker.run_once()
    dead = delivery(context, delivery_id)
    assert dead.status == DeliveryStatus.dead and dead.last_error and "500" in dead.last_error
    retried = api.post(f"/api/v1/notifications/{delivery_id}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    worker.run_once()
    sent = delivery(context, delivery_id)
    assert (sent.status, sent.last_error) == (DeliveryStatus.sent, None)
    listed = api.get("/api/v1/notifications", headers=admin).json()["items"]
    assert [(n["id"], n["status"], n["last_error"]) for n in listed] == [(delivery_id, "sent", None)]
    # The failure is still told where the history of attempts is kept.
    actions = [entry.action for entry in notification_entries(context, incident_id)]
    assert any("500" in action for action in actions), actions
    assert actions[-1].startswith("Sent "), actions
