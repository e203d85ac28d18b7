from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter as Tally
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from typer.testing import CliRunner

from tests.notify.conftest import WEBHOOK_SECRET
from tests.peers import Recorder, SmtpServer, start_recorder, wait_until
from warroom.auth.integrations import FORGET_REPLACED_KEY
from warroom.cli.main import app as cli_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import utcnow
from warroom.errors import InvalidInput
from warroom.incidents import service as incidents
from warroom.incidents.models import TimelineEntry
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs import service as jobs_service
from warroom.jobs.models import Job, JobStatus
from warroom.jobs.worker import Worker
from warroom.notify import service as notify
from warroom.notify.config import (
    EmailChannel,
    EmailSettings,
    TemplateOverride,
    WebhookChannel,
    WebhookSettings,
)
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.notify.signing import verify
from warroom.orgconfig import ConfigError, parse_org_config

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def open_incident(
    context: AppContext, title: str = "Checkout failing for EU customers", commander: str | None = "Alice"
) -> int:
    with context.db.write() as session:
        incident = incidents.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title=title, severity="P1", services=["payments"], commander=commander),
            performer="alice",
        )
        return incident.id


def delivery(context: AppContext, delivery_id: int) -> Delivery:
    with context.db.read() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def notification_entries(context: AppContext, incident_id: int) -> list[TimelineEntry]:
    with context.db.read() as session:
        return list(
            session.scalars(
                select(TimelineEntry)
                .where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind == "notification")
                .order_by(TimelineEntry.seq)
            )
        )


def send(app: AppContext, **kwargs: Any) -> int:
    with app.db.write() as session:
        return notify.send(session, **{"context": {}, "incident_id": None, **kwargs}).id


def test_email_is_delivered_after_smtp_comes_back(context: AppContext, smtp_port: int) -> None:
    clock.set(START)
    incident_id = open_incident(context, title="Checkout <script>alert(1)</script> failing")
    delivery_id = send(
        context,
        channel="email",
        to="oncall@acme.example",
        template="page",
        context={"reason": "you are on call for payments"},
        incident_id=incident_id,
    )
    worker = Worker(context, name="w1")
    # Nothing listens on the SMTP port yet. The port is held (bound, not listening) meanwhile: a free port is
    # also an ephemeral one, and a client given it as its own local port connects to itself and times out
    # instead of being refused (a flake seen in CI).
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", smtp_port))
        assert worker.run_once() == 1
    failed = delivery(context, delivery_id)
    assert failed.status == DeliveryStatus.failed
    assert failed.attempts == 1
    assert "Connection refused" in (failed.last_error or "") or "Errno" in (failed.last_error or "")
    [entry] = notification_entries(context, incident_id)
    assert "failed" in entry.action and "retrying" in entry.action
    with SmtpServer(smtp_port) as smtp:
        assert worker.run_once() == 0  # the retry is not due yet
        clock.advance(timedelta(minutes=1))
        assert worker.run_once() == 1
        sent = delivery(context, delivery_id)
        assert sent.status == DeliveryStatus.sent
        assert sent.attempts == 2
        assert sent.sent_at == clock.now()
        [message] = smtp.sink.messages
    assert smtp.sink.envelopes == [("incidents@acme.example", ["oncall@acme.example"])]
    assert (
        message["Subject"] == f"[P1] INC-{incident_id} needs you: Checkout <script>alert(1)</script> failing"
    )
    assert message["To"] == "oncall@acme.example"
    assert message["Message-ID"] == f"<warroom.delivery.{delivery_id}@acme.example>"
    assert message["X-Warroom-Incident"] == f"INC-{incident_id}"
    text = message.get_body("plain").get_content()  # type: ignore[union-attr]
    html = message.get_body("html").get_content()  # type: ignore[union-attr]
    assert "you are on call for payments" in text
    assert "<script>alert(1)</script>" in text  # plain text is not HTML
    assert "&lt;script&gt;" in html and "<script>" not in html  # the HTML part is escaped
    entries = notification_entries(context, incident_id)
    assert len(entries) == 2
    assert entries[1].action.startswith("Sent page notification via email to oncall@acme.example (attempt 2)")
    assert entries[1].performer == "notifier"
    with context.db.read() as session:
        job = session.scalar(select(Job).where(Job.id == sent.job_id))
        assert job is not None and job.status == JobStatus.done


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_smtp_login_with_a_secret_from_the_environment(
    context: AppContext, smtp_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "hunter2")
    channel = EmailChannel(
        name="authed-mail",
        type="email",
        settings=EmailSettings(
            host="127.0.0.1",
            port=smtp_port,
            security="none",
            username="warroom",
            password="${TEST_SMTP_PASSWORD}",
        ),
    )
    context.org = context.org.model_copy(
        update={"notification_channels": [*context.org.notification_channels, channel]}
    )
    with SmtpServer(smtp_port, username="warroom", password="hunter2") as smtp:
        delivery_id = send(
            context, channel="authed-mail", to="a@acme.example, b@acme.example", template="test"
        )
        assert Worker(context).run_once() == 1
        assert delivery(context, delivery_id).status == DeliveryStatus.sent
    assert smtp.logins == ["warroom"]
    assert smtp.sink.envelopes[0][1] == ["a@acme.example", "b@acme.example"]
    assert smtp.sink.messages[0]["From"] == "warroom@localhost"  # the WARROOM_SMTP_FROM default


def test_missing_secret_fails_clearly(context: AppContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    channel = EmailChannel(
        name="mail2", type="email", settings=EmailSettings(host="127.0.0.1", password="${NOT_SET_ANYWHERE}")
    )
    context.org = context.org.model_copy(update={"notification_channels": [channel]})
    delivery_id = send(context, channel="mail2", to="x@acme.example", template="test")
    Worker(context).run_once()
    assert "environment variable NOT_SET_ANYWHERE is not set" in (
        delivery(context, delivery_id).last_error or ""
    )


def test_signed_webhook_can_be_verified(context: AppContext, recorder: Recorder) -> None:
    clock.set(START)
    incident_id = open_incident(context)
    delivery_id = send(
        context,
        channel="ops-webhook",
        to="",
        template="incident_update",
        context={"message": "Payments are failing over to the secondary provider.", "audience": "ops"},
        incident_id=incident_id,
    )
    assert Worker(context).run_once() == 1
    assert delivery(context, delivery_id).status == DeliveryStatus.sent
    [request] = recorder.to("/hook")
    headers = {name.lower(): value for name, value in request.headers.items()}
    assert headers["content-type"] == "application/json"
    assert headers["x-team"] == "ops"
    assert headers["x-warroom-delivery"] == str(delivery_id)
    timestamp, signature = headers["x-warroom-timestamp"], headers["x-warroom-signature"]
    assert signature.startswith("sha256=")
    assert int(timestamp) == int(START.timestamp())
    assert verify(WEBHOOK_SECRET, timestamp=timestamp, body=request.body, signature=signature, now=START)
    # a receiver rejects a changed body, a wrong key, and a replay long after the fact
    tampered = request.body.replace(b"secondary", b"primary")
    assert not verify(WEBHOOK_SECRET, timestamp=timestamp, body=tampered, signature=signature, now=START)
    assert not verify("other key", timestamp=timestamp, body=request.body, signature=signature, now=START)
    later = START + timedelta(minutes=10)
    assert not verify(WEBHOOK_SECRET, timestamp=timestamp, body=request.body, signature=signature, now=later)
    body = json.loads(request.body)
    assert body["delivery_id"] == delivery_id
    assert body["incident"] == f"INC-{incident_id}"
    assert body["template"] == "incident_update"
    assert body["subject"] == f"[P1] INC-{incident_id} update: Checkout failing for EU customers"
    assert "secondary provider" in body["text"]
    assert body["data"]["audience"] == "ops"


def test_webhook_errors_retry_and_429_waits_as_asked(context: AppContext, recorder: Recorder) -> None:
    clock.set(START)
    recorder.fail("/hook", 1, status=503)
    recorder.fail("/hook", 1, status=429, headers={"Retry-After": "120"})
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    worker = Worker(context)
    assert worker.run_once() == 1
    assert delivery(context, delivery_id).status == DeliveryStatus.failed
    assert "503" in (delivery(context, delivery_id).last_error or "")
    clock.advance(timedelta(minutes=1))
    assert worker.run_once() == 1  # 429: wait as asked; the attempt counts, so 429s for ever end dead
    with context.db.read() as session:
        job = session.scalar(select(Job).where(Job.kind == "notify.deliver"))
        assert job is not None
        assert job.attempts == 2
        assert job.run_at == clock.now() + timedelta(seconds=120)
    assert "asked to slow down (429)" in (delivery(context, delivery_id).last_error or "")
    clock.advance(timedelta(seconds=120))
    assert worker.run_once() == 1
    assert delivery(context, delivery_id).status == DeliveryStatus.sent
    assert len(recorder.to("/hook")) == 3


def test_a_429_with_a_retry_after_that_is_not_a_number_waits_30s(
    context: AppContext, recorder: Recorder
) -> None:
    clock.set(START)
    recorder.fail("/hook", 1, status=429, headers={"Retry-After": "\u00b2"})  # a digit to str.isdigit() only
    send(context, channel="ops-webhook", to="", template="test")
    assert Worker(context).run_once() == 1
    with context.db.read() as session:
        job = session.scalar(select(Job).where(Job.kind == "notify.deliver"))
        assert job is not None
        assert (job.attempts, job.run_at) == (1, clock.now() + timedelta(seconds=30))


def test_a_peer_that_always_answers_429_ends_a_dead_letter(context: AppContext, recorder: Recorder) -> None:
    """Retry-After: 0 made a loop of ten requests a second, pending for ever with no error shown."""
    clock.set(START)
    context.settings.notify_max_attempts = 3
    recorder.fail("/hook", 10, status=429, headers={"Retry-After": "0"})
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    worker = Worker(context)
    worker.run_once()
    with context.db.read() as session:
        job = session.scalar(select(Job).where(Job.kind == "notify.deliver"))
        assert job is not None  # waits the backoff, not the 0 s asked: a burst must not use every attempt
        assert job.run_at - clock.now() >= timedelta(seconds=4)
    for _ in range(4):
        clock.advance(timedelta(hours=1))
        worker.run_once()
    dead = delivery(context, delivery_id)
    assert (dead.status, dead.attempts) == (DeliveryStatus.dead, 3)
    assert dead.last_error == "the webhook asked to slow down (429)"
    assert len(recorder.to("/hook")) == 3


def test_a_delivery_that_keeps_failing_is_a_visible_dead_letter(
    context: AppContext,
    api: TestClient,
    responder: dict[str, str],
    viewer: dict[str, str],
    recorder: Recorder,
) -> None:
    clock.set(START)
    context.settings.notify_max_attempts = 3
    recorder.fail("/slack", 10, status=500)
    # No commander, so no update reminders: each run of the worker below is the delivery's next attempt.
    incident_id = open_incident(context, commander=None)
    delivery_id = send(context, channel="slack", to="#payments", template="page", incident_id=incident_id)
    worker = Worker(context)
    for _ in range(3):
        assert worker.run_once() == 1
        clock.advance(timedelta(hours=1))
    dead = delivery(context, delivery_id)
    assert dead.status == DeliveryStatus.dead
    assert dead.attempts == 3
    assert "Slack answered 500" in (dead.last_error or "")
    entries = notification_entries(context, incident_id)
    assert [e.data["status"] for e in entries if e.data] == ["failed", "dead"]
    assert (
        "Could not deliver page notification via slack to #payments after 3 attempt(s)" in entries[-1].action
    )
    assert api.get("/api/v1/notifications", headers=viewer).status_code == 403  # bodies may hold ack links
    listed = api.get("/api/v1/notifications", params={"status": "dead"}, headers=responder)
    assert listed.status_code == 200, listed.text
    [item] = listed.json()["items"]
    assert item["id"] == delivery_id and item["incident"] == f"INC-{incident_id}" and item["attempts"] == 3
    assert api.get("/api/v1/notifications", params={"status": "sent"}, headers=responder).json()["total"] == 0
    by_incident = api.get(
        "/api/v1/notifications", params={"incident": f"INC-{incident_id}"}, headers=responder
    )
    assert by_incident.json()["total"] == 1
    bad = api.get("/api/v1/notifications", params={"status": "lost"}, headers=responder)
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "status"
    # A filter that names nothing is refused, not answered "no notifications".
    assert (
        api.get("/api/v1/notifications", params={"incident": "INC-99999"}, headers=responder).status_code
        == 404
    )
    unknown = api.get("/api/v1/notifications", params={"channel": "pagerr"}, headers=responder)
    assert unknown.status_code == 422 and "unknown notification channel 'pagerr'" in unknown.text
    assert (
        api.get("/api/v1/notifications", params={"channel": "email"}, headers=responder).json()["total"] == 0
    )


def test_a_refusal_that_retrying_cannot_change_is_a_dead_letter_at_once(
    context: AppContext, recorder: Recorder, smtp_port: int
) -> None:
    """A Slack hook that answers 404 (the channel was deleted) or a mailbox that does not exist: retrying
    for an hour only delays the dead letter that tells someone to fix it."""
    clock.set(START)
    incident_id = open_incident(context)
    recorder.fail("/slack", 1, status=404)
    to_slack = send(context, channel="slack", to="#payments", template="page", incident_id=incident_id)
    with SmtpServer(smtp_port) as smtp:
        smtp.sink.refuse["nobody@acme.example"] = "550 5.1.1 no such user"
        to_nobody = send(context, channel="email", to="nobody@acme.example", template="test")
        worker = Worker(context)
        assert worker.run_once() == 2
    expected = {to_slack: "Slack refused it with 404", to_nobody: "550 5.1.1 no such user"}
    for delivery_id, error in expected.items():
        dead = delivery(context, delivery_id)
        assert (dead.status, dead.attempts) == (DeliveryStatus.dead, 1)
        assert error in (dead.last_error or "")
    [entry] = notification_entries(context, incident_id)
    assert "after 1 attempt(s)" in entry.action and "404" in entry.action
    assert smtp.sink.messages == []


def test_a_busy_mailbox_and_a_server_error_are_still_retried(
    context: AppContext, recorder: Recorder, smtp_port: int
) -> None:
    clock.set(START)
    recorder.fail("/hook", 1, status=408)
    to_hook = send(context, channel="ops-webhook", to="", template="test")
    with SmtpServer(smtp_port) as smtp:
        smtp.sink.refuse["busy@acme.example"] = "452 4.2.2 mailbox full"
        to_busy = send(context, channel="email", to="busy@acme.example", template="test")
        worker = Worker(context)
        assert worker.run_once() == 2
        for delivery_id in (to_hook, to_busy):
            assert delivery(context, delivery_id).status == DeliveryStatus.failed
        assert "452 4.2.2 mailbox full" in (delivery(context, to_busy).last_error or "")
        del smtp.sink.refuse["busy@acme.example"]
        clock.advance(timedelta(minutes=5))
        assert worker.run_once() == 2
    assert {delivery(context, d).status for d in (to_hook, to_busy)} == {DeliveryStatus.sent}


def test_recipients_the_mail_server_refused_are_named_with_the_sent_message(
    context: AppContext, smtp_port: int
) -> None:
    clock.set(START)
    incident_id = open_incident(context)
    with SmtpServer(smtp_port) as smtp:
        smtp.sink.refuse["gone@acme.example"] = "550 5.1.1 no such user"
        delivery_id = send(
            context,
            channel="email",
            to="oncall@acme.example, gone@acme.example",
            template="page",
            incident_id=incident_id,
        )
        assert Worker(context).run_once() == 1
    assert smtp.sink.envelopes == [("incidents@acme.example", ["oncall@acme.example"])]
    sent = delivery(context, delivery_id)
    assert sent.status == DeliveryStatus.sent
    assert sent.last_error == "refused by the mail server: gone@acme.example (550 5.1.1 no such user)"
    [entry] = notification_entries(context, incident_id)
    assert entry.action.endswith("; the mail server refused gone@acme.example (550 5.1.1 no such user)")
    assert entry.data["refused"] == "gone@acme.example (550 5.1.1 no such user)"


def test_recipients_refused_for_now_get_the_message_again(context: AppContext, smtp_port: int) -> None:
    """A full mailbox (452) is a "not now": the others have the message, and that one gets it later."""
    clock.set(START)
    with SmtpServer(smtp_port) as smtp:
        smtp.sink.refuse["full@acme.example"] = "452 4.2.2 mailbox full"
        delivery_id = send(
            context, channel="email", to="oncall@acme.example, full@acme.example", template="test"
        )
        worker = Worker(context)
        assert worker.run_once() == 1
        first = delivery(context, delivery_id)
        assert first.status == DeliveryStatus.sent
        with context.db.read() as session:
            again = session.scalar(select(Delivery).where(Delivery.id != delivery_id))
            assert again is not None
            assert (again.recipient, again.status, again.subject) == (
                "full@acme.example",
                "pending",
                first.subject,
            )
        del smtp.sink.refuse["full@acme.example"]
        assert worker.run_once() == 0  # a minute later, not at once
        clock.advance(timedelta(minutes=1))
        assert worker.run_once() == 1
        assert delivery(context, again.id).status == DeliveryStatus.sent
    assert [recipients for _, recipients in smtp.sink.envelopes] == [
        ["oncall@acme.example"],
        ["full@acme.example"],
    ]


def test_dead_letters_can_be_retried(
    context: AppContext, api: TestClient, admin: dict[str, str], recorder: Recorder
) -> None:
    clock.set(START)
    context.settings.notify_max_attempts = 1
    recorder.fail("/hook", 1, status=500)
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    worker = Worker(context)
    worker.run_once()
    assert delivery(context, delivery_id).status == DeliveryStatus.dead
    retried = api.post(f"/api/v1/notifications/{delivery_id}/retry", headers=admin)
    assert retried.status_code == 202, retried.text
    assert api.post(f"/api/v1/notifications/{delivery_id}/retry", headers=admin).status_code == 409
    worker.run_once()
    assert delivery(context, delivery_id).status == DeliveryStatus.sent


def test_incident_updates_go_to_the_audiences_channels(
    context: AppContext, api: TestClient, responder: dict[str, str], recorder: Recorder, smtp_port: int
) -> None:
    incident_id = open_incident(context)
    ref = f"INC-{incident_id}"
    for audience in ("internal", "status-page", "executives", "customers"):
        answer = api.post(
            f"/api/v1/incidents/{ref}/updates",
            json={"audience": audience, "message": f"Update for {audience}: failover in progress."},
            headers=responder,
        )
        assert answer.status_code == 201, answer.text
    with context.db.read() as session:
        rows = list(session.scalars(select(Delivery).order_by(Delivery.id)))
    # internal -> slack:#incidents; status-page and in-app are not notification channels;
    # executives -> email:exec@acme.example; customers -> email (the channel's default recipient)
    assert [(d.channel, d.recipient) for d in rows] == [
        ("slack", "#incidents"),
        ("email", "exec@acme.example"),
        ("email", "updates@acme.example"),
    ]
    with SmtpServer(smtp_port) as smtp:
        assert Worker(context).run_once() == 3
    [slack] = recorder.to("/slack")
    payload = json.loads(slack.body)
    assert payload["text"].startswith(f"*[P1] {ref} update: Checkout failing for EU customers*")
    assert "Update for internal: failover in progress." in payload["text"]
    assert payload["blocks"][0]["type"] == "header"
    assert "failover in progress" in payload["blocks"][1]["text"]["text"]
    assert sorted(m["To"] for m in smtp.sink.messages) == ["exec@acme.example", "updates@acme.example"]
    sent = [e for e in notification_entries(context, incident_id) if e.action.startswith("Sent")]
    assert len(sent) == 3


def test_templates_are_overridable_and_sandboxed(context: AppContext) -> None:
    assert send(context, channel="console", to="", template="test") > 0
    with context.db.read() as session:
        row = session.scalars(select(Delivery)).one()
        assert row.subject == "Console check for Acme Cloud"
        assert "test message from Acme Cloud's Warroom" in row.body  # body falls back to the built-in
    sneaky = EmailChannel(
        name="sneaky",
        type="email",
        to="x@acme.example",
        templates={"test": TemplateOverride(subject="{{ ''.__class__.__mro__[1].__subclasses__() }}")},
    )
    context.org = context.org.model_copy(update={"notification_channels": [sneaky]})
    with pytest.raises(InvalidInput, match="could not be rendered"), context.db.write() as session:
        notify.send(session, channel="sneaky", to="", template="test", context={})
    # Read-only too: a template cannot change what it is given (the message's data is kept as evidence).
    meddling = sneaky.model_copy(
        update={"templates": {"test": TemplateOverride(subject="{{ labels.update({'forged': 'yes'}) }}")}}
    )
    context.org = context.org.model_copy(update={"notification_channels": [meddling]})
    labels = {"host": "db-1"}
    with pytest.raises(InvalidInput, match="could not be rendered"), context.db.write() as session:
        notify.send(session, channel="sneaky", to="", template="test", context={"labels": labels})
    assert labels == {"host": "db-1"}


def test_a_channel_template_can_test_for_a_missing_value(context: AppContext) -> None:
    """Strict, as rule templates are: a missing value fails when shown, but ``or`` and ``if`` may test it."""
    channel = EmailChannel(
        name="mail",
        type="email",
        to="x@acme.example",
        templates={"test": TemplateOverride(subject="Check for {{ labels.team or 'everyone' }}")},
    )
    context.org = context.org.model_copy(update={"notification_channels": [channel]})
    with context.db.write() as session:
        notify.send(session, channel="mail", to="", template="test", context={"labels": {}})
    with context.db.read() as session:
        assert session.scalars(select(Delivery)).one().subject == "Check for everyone"
    shown = channel.model_copy(update={"templates": {"test": TemplateOverride(subject="{{ labels.team }}")}})
    context.org = context.org.model_copy(update={"notification_channels": [shown]})
    with pytest.raises(InvalidInput, match="could not be rendered"), context.db.write() as session:
        notify.send(session, channel="mail", to="", template="test", context={"labels": {}})


def test_bad_send_input(
    context: AppContext, api: TestClient, admin: dict[str, str], responder: dict[str, str]
) -> None:
    context.org = context.org.model_copy(update={"notification_channels": []})  # bare channel types only
    with context.db.write() as session:
        with pytest.raises(InvalidInput, match="unknown notification channel 'pager'"):
            notify.send(session, channel="pager", to="x", template="test", context={})
        with pytest.raises(InvalidInput, match="unknown template 'nope'"):
            notify.send(session, channel="console", to="", template="nope", context={})
        with pytest.raises(InvalidInput, match="needs a recipient"):
            notify.send(session, channel="email", to="", template="test", context={})
        with pytest.raises(InvalidInput, match="recipient must be the URL"):
            notify.send(session, channel="webhook", to="not-a-url", template="test", context={})
    # Recipients that could only fail at delivery, eight times over: refused when asked for.
    for channel, to, why in [
        ("email", ",,,", "names no email address"),
        ("email", "a@b.example\r\nBcc: x@y.example", "on one line"),
        ("webhook", "https://[::1/hook", "not a valid URL"),
        ("webhook", "http://", "not an http(s) URL with a host"),
        ("slack", "https://hooks.example/x\nX-Evil: 1", "on one line"),
    ]:
        refused = api.post("/api/v1/notifications/test", json={"channel": channel, "to": to}, headers=admin)
        assert refused.status_code == 422, (to, refused.text)
        assert why in refused.json()["error"]["message"], refused.text
    answer = api.post("/api/v1/notifications/test", json={"channel": "pager"}, headers=admin)
    assert answer.status_code == 422
    assert "console" in answer.json()["error"]["details"][0]["allowed"]
    assert (
        api.post("/api/v1/notifications/test", json={"channel": "console"}, headers=responder).status_code
        == 403
    )
    assert (
        api.post("/api/v1/notifications/test", json={"channel": "console", "x": 1}, headers=admin).status_code
        == 422
    )
    with context.db.read() as session:
        assert session.scalars(select(Delivery)).all() == []


def test_send_is_idempotent_and_joins_the_transaction(context: AppContext) -> None:
    with context.db.write() as session:
        first = notify.send(
            session, channel="console", to="", template="test", context={}, idempotency_key="k1"
        )
        again = notify.send(
            session, channel="console", to="", template="test", context={}, idempotency_key="k1"
        )
        assert first.id == again.id
    with pytest.raises(RuntimeError), context.db.write() as session:
        notify.send(session, channel="console", to="", template="test", context={})
        raise RuntimeError("rolled back")
    with context.db.read() as session:
        assert len(session.scalars(select(Delivery)).all()) == 1
        assert len(session.scalars(select(Job)).all()) == 1


def test_bare_channel_types_work_without_configuration(context: AppContext, recorder: Recorder) -> None:
    context.settings.webhook_secret = "from-settings"
    delivery_id = send(context, channel="webhook", to=recorder.url("/personal"), template="test")
    assert Worker(context).run_once() == 1
    assert delivery(context, delivery_id).status == DeliveryStatus.sent
    [request] = recorder.to("/personal")
    assert verify(
        "from-settings",
        timestamp=request.headers["X-Warroom-Timestamp"],
        body=request.body,
        signature=request.headers["X-Warroom-Signature"],
        now=clock.now(),
    )


def test_org_file_channel_problems_are_reported() -> None:
    text = """
notification_channels:
  - name: chat
    type: slack
    settings: {url: "${SLACK_URL}"}
  - name: chat
    type: console
  - name: mail
    type: email
    settings: {security: ssl}
  - name: hooks
    type: webhook
    templates:
      page: {subject: "{{ incident.ref"}
      pgae: {subject: "x"}
  - name: pager
    type: pager
"""
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    problems = [str(p) for p in caught.value.problems]
    assert any("notification_channels[2]" in p and "security" in p for p in problems), problems
    assert any("notification_channels[4]" in p and "'pager'" in p for p in problems), problems
    valid = text.split("  - name: mail")[0]
    with pytest.raises(ConfigError) as caught:
        parse_org_config(valid + text.split("    settings: {security: ssl}\n")[1].split("  - name: pager")[0])
    problems = [str(p) for p in caught.value.problems]
    assert any(p.startswith("notification_channels[1].name") and "used twice" in p for p in problems), (
        problems
    )
    assert any("templates.page.subject" in p and "template error" in p for p in problems), problems
    assert any("templates.pgae" in p and "not a built-in template" in p for p in problems), problems


@pytest.mark.peer
@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls(context: AppContext, smtp_port: int, tmp_path: Any, security: str) -> None:
    import ssl

    from tests.conftest import require_peer
    from tests.peers import self_signed_certificate

    made = self_signed_certificate(tmp_path)
    require_peer(made is not None, "openssl is needed to make a test certificate")
    assert made is not None
    cert, key = made
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    channel = EmailChannel(
        name="tls-mail",
        type="email",
        settings=EmailSettings(host="127.0.0.1", port=smtp_port, security=security, ca_file=cert),
    )
    untrusted = EmailChannel(
        name="untrusted-mail",
        type="email",
        settings=EmailSettings(host="127.0.0.1", port=smtp_port, security=security),
    )
    context.org = context.org.model_copy(update={"notification_channels": [channel, untrusted]})
    peer = (
        SmtpServer(smtp_port, starttls=server_tls)
        if security == "starttls"
        else SmtpServer(smtp_port, implicit_tls=server_tls)
    )
    with peer as smtp:
        trusted_id = send(context, channel="tls-mail", to="sec@acme.example", template="test")
        untrusted_id = send(context, channel="untrusted-mail", to="sec@acme.example", template="test")
        assert Worker(context).run_once() == 2
    assert delivery(context, trusted_id).status == DeliveryStatus.sent
    assert len(smtp.sink.messages) == 1
    # a certificate nobody vouches for is refused, not silently accepted
    refused = delivery(context, untrusted_id)
    assert refused.status == DeliveryStatus.failed
    assert "CERTIFICATE_VERIFY_FAILED" in (refused.last_error or "")


def test_a_slow_peer_does_not_hold_the_write_lock(context: AppContext, recorder: Recorder) -> None:
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    worker = threading.Thread(target=Worker(context).run_once)
    worker.start()
    try:
        assert entered.wait(10), "the webhook was never called"
        # The webhook is in flight. Another writer (an API request, say) gets through now; were the
        # lock held during the call, this would wait until the call timed out and the worker finished.
        incident_id = open_incident(context, title="Written while a notification was in flight")
        assert worker.is_alive()
    finally:
        gate.set()
        worker.join(30)
    assert incident_id
    assert delivery(context, delivery_id).status == DeliveryStatus.sent


def test_a_timer_does_not_wait_behind_a_slow_delivery(context: AppContext, recorder: Recorder) -> None:
    """An escalation step due while a webhook takes its time runs on time: the worker runs deliveries and
    timers in separate loops. Before, the step waited for the whole batch of deliveries in hand."""
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    stop = threading.Event()
    worker = threading.Thread(target=Worker(context, name="w", poll_interval=0.05).run_forever, args=(stop,))
    worker.start()
    try:
        assert entered.wait(10), "the webhook was never called"
        with context.db.write() as session:
            # Any quick kind will do: this one finds no key to erase and is done.
            quick = jobs_service.enqueue(session, kind=FORGET_REPLACED_KEY, payload={"integration_id": 999})
            timer = quick.id
        wait_until(lambda: job_status(context, timer) == JobStatus.done, timeout=10)
        assert delivery(context, delivery_id).status == DeliveryStatus.pending  # still in flight
    finally:
        gate.set()
        stop.set()
        worker.join(30)
    assert delivery(context, delivery_id).status == DeliveryStatus.sent


def test_a_peer_slower_than_a_lease_is_not_sent_twice(context: AppContext, recorder: Recorder) -> None:
    """The first worker renews its lease while it waits on the peer; the second, claiming meanwhile, finds
    nothing to take over. Before, every lease length another copy went out (a QA run: 8 of one message)."""
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    lease = timedelta(seconds=0.6)
    first = threading.Thread(target=Worker(context, name="first", lease=lease).run_once)
    first.start()
    try:
        assert entered.wait(10), "the webhook was never called"
        second = Worker(context, name="second", lease=lease)
        for _ in range(4):
            time.sleep(0.5)  # most of a lease, four times over: the first lease alone would have run out
            assert second.run_once() == 0
        assert delivery(context, delivery_id).status == DeliveryStatus.pending
    finally:
        gate.set()
        first.join(30)
    assert delivery(context, delivery_id).status == DeliveryStatus.sent
    assert len(recorder.to("/hook")) == 1


def test_a_slow_peer_leaves_slots_for_pages_bound_elsewhere(context: AppContext, recorder: Recorder) -> None:
    """Four messages to one webhook that hangs, then a page to another peer: the page goes out while the four
    wait, since one peer gets at most half of the worker's slots. Before, the four held all four slots and
    the page waited for them (a QA run measured 23 s on PostgreSQL and 36 s on SQLite)."""
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    slow = [send(context, channel="ops-webhook", to="", template="test") for _ in range(4)]
    pager = start_recorder()
    stop = threading.Event()
    worker = Worker(context, name="w", poll_interval=0.05, concurrency=4)
    assert worker.in_lane("network").peer_limit == 2
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        assert entered.wait(10), "the webhook was never called"
        page = send(context, channel="ops-webhook", to=pager.url("/page"), template="test")
        wait_until(lambda: delivery(context, page).status == DeliveryStatus.sent, timeout=10)
        assert [delivery(context, each).status for each in slow] == [DeliveryStatus.pending] * 4
        with context.db.read() as session:
            running = session.scalars(select(Job.peer).where(Job.status == JobStatus.running)).all()
        assert running == [recorder.url("")] * 2  # the other two wait their turn, unclaimed
    finally:
        gate.set()
        wait_until(lambda: all(delivery(context, each).status == DeliveryStatus.sent for each in slow), 20)
        stop.set()
        thread.join(30)
        pager.server.shutdown()
        pager.server.server_close()
    assert len(recorder.to("/hook")) == 4 and len(pager.to("/page")) == 1


def test_two_hung_peers_still_leave_a_slot_for_a_page_elsewhere(
    context: AppContext, recorder: Recorder
) -> None:
    """Two peers hang with messages queued to each: they share three of the four slots, and the last slot goes
    only to a peer with nothing in flight. Before, each took its two and a page to anyone else waited for
    their whole queues (a QA run: 49 s, and 205 s behind a peer that trickled its answer)."""
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    other, pager = start_recorder(), start_recorder()
    other_entered = threading.Event()
    other.hold("/hung", other_entered, gate)
    slow = [send(context, channel="ops-webhook", to="", template="test") for _ in range(3)]
    slow += [send(context, channel="ops-webhook", to=other.url("/hung"), template="test") for _ in range(3)]
    stop = threading.Event()
    thread = threading.Thread(
        target=Worker(context, name="w", poll_interval=0.05, concurrency=4).run_forever, args=(stop,)
    )
    thread.start()
    try:
        assert entered.wait(10) and other_entered.wait(10), "the webhooks were never called"
        page = send(context, channel="ops-webhook", to=pager.url("/page"), template="test")
        wait_until(lambda: delivery(context, page).status == DeliveryStatus.sent, timeout=10)
        with context.db.read() as session:
            running = sorted(session.scalars(select(Job.peer).where(Job.status == JobStatus.running)).all())
        assert len(running) == 3 and set(running) == {recorder.url(""), other.url("")}
    finally:
        gate.set()
        wait_until(lambda: all(delivery(context, each).status == DeliveryStatus.sent for each in slow), 30)
        stop.set()
        thread.join(30)
        for server in (other, pager):
            server.server.shutdown()
            server.server.server_close()
    assert len(pager.to("/page")) == 1


def test_each_delivery_job_names_its_peer(context: AppContext, recorder: Recorder, smtp_port: int) -> None:
    """The mail server, or the URL's scheme, host and port (no path or credentials); none for the console.
    A channel whose URL is a secret this process lacks is its own peer."""
    context.org = context.org.model_copy(
        update={
            "notification_channels": [
                *context.org.notification_channels,
                WebhookChannel(
                    name="vault-hook", type="webhook", settings=WebhookSettings(url="${NO_SUCH_URL}")
                ),
            ]
        }
    )
    sent = {
        "mail": send(context, channel="email", to="oncall@acme.example", template="test"),
        "hook": send(context, channel="ops-webhook", to="", template="test"),
        "person": send(
            context, channel="slack", to="https://user:pw@Hooks.Example:8443/T1/B2", template="test"
        ),
        "console": send(context, channel="console", to="", template="test"),
        "vault": send(context, channel="vault-hook", to="", template="test"),
    }
    with context.db.read() as session:
        peers = {
            name: session.scalar(
                select(Job.peer).join(Delivery, Delivery.job_id == Job.id).where(Delivery.id == id_)
            )
            for name, id_ in sent.items()
        }
    assert peers == {
        "mail": f"smtp://127.0.0.1:{smtp_port}",
        "hook": recorder.url(""),
        "person": "https://hooks.example:8443",
        "console": None,
        "vault": "channel:vault-hook",
    }
    listed = CliRunner().invoke(
        cli_app, ["jobs", "list", "--json", "--database-url", context.settings.resolved_database_url]
    )
    assert listed.exit_code == 0, listed.output
    assert {job["peer"] for job in json.loads(listed.stdout)["items"]} == set(peers.values())


def test_a_delivery_withdrawn_while_its_attempt_fails_stays_withdrawn(
    context: AppContext, recorder: Recorder
) -> None:
    """Someone acknowledges while the page's first attempt is out; that attempt fails. The retry must not
    send it: before, the failure turned it back into "failed" and the retry paged an acknowledged incident."""
    clock.set(START)
    entered, gate = threading.Event(), threading.Event()
    recorder.hold("/hook", entered, gate)
    recorder.fail("/hook", 1, status=500)
    delivery_id = send(context, channel="ops-webhook", to="", template="test")
    worker = Worker(context, name="w1")
    attempt = threading.Thread(target=worker.run_once)
    attempt.start()
    try:
        assert entered.wait(10), "the webhook was never called"
        with context.db.write() as session:
            assert notify.withdraw(session, delivery_ids=[delivery_id], reason="acknowledged") == 1
    finally:
        gate.set()
        attempt.join(30)
    assert delivery(context, delivery_id).status == DeliveryStatus.withdrawn
    clock.advance(timedelta(hours=1))
    worker.run_once()  # the retry finds it withdrawn and sends nothing
    assert delivery(context, delivery_id).status == DeliveryStatus.withdrawn
    assert len(recorder.to("/hook")) == 1


def job_status(context: AppContext, job_id: int) -> JobStatus:
    with context.db.read() as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found.status


def test_a_delivery_whose_worker_keeps_dying_is_a_dead_letter(context: AppContext) -> None:
    clock.set(START)
    context.settings.notify_max_attempts = 1
    incident_id = open_incident(context)
    delivery_id = send(context, channel="console", to="", template="page", incident_id=incident_id)
    claimed = Worker(context, name="crashes").claim()
    assert claimed
    with context.db.write() as session:
        # ... it starts (a delivery's attempt counts when it starts, in the commit that renews its lease
        # before it sends) and the process dies mid-delivery.
        session.execute(update(Job).where(Job.id.in_(claimed)).values(attempts=Job.attempts + 1))
    clock.advance(timedelta(minutes=5))
    assert Worker(context, name="survivor").run_once() == 0
    dead = delivery(context, delivery_id)
    assert dead.status == DeliveryStatus.dead
    assert "lease expired" in (dead.last_error or "")
    assert notification_entries(context, incident_id)[-1].data["status"] == "dead"  # type: ignore[index]


@pytest.mark.parametrize(
    "to", ["http://127.0.0.1:99999/x", "http://exa mple.com/x", "https://[::1/hook", "http://"]
)
def test_a_url_that_cannot_be_reached_is_refused_when_asked(
    api: TestClient, admin: dict[str, str], to: str
) -> None:
    refused = api.post("/api/v1/notifications/test", json={"channel": "webhook", "to": to}, headers=admin)
    assert refused.status_code == 422, refused.text


def test_a_dead_workers_deliveries_count_against_their_peers_limit(
    context: AppContext, recorder: Recorder
) -> None:
    """Four messages to one webhook were in flight on a worker that died (their leases ran out), and a page to
    another peer is due: the worker that takes over takes two of the four, the peer's limit, and the page.
    Before, the expired jobs filled every free slot whatever their peer, the page among the left-over."""
    stranded = [send(context, channel="ops-webhook", to="", template="test") for _ in range(4)]
    with context.db.write() as session:
        session.execute(
            update(Job)
            .where(Job.status == JobStatus.pending)
            .values(
                status=JobStatus.running,
                lease_owner="dead-worker",
                lease_expires_at=utcnow() - timedelta(seconds=1),
                attempts=1,
            )
        )
    pager = start_recorder()
    page = send(context, channel="ops-webhook", to=pager.url("/page"), template="test")
    lane = Worker(context, name="w", concurrency=4).in_lane("network")
    claimed = lane._claim(limit=4, in_flight=Tally())
    pager.server.shutdown()
    pager.server.server_close()
    with context.db.read() as session:
        page_job = session.scalars(select(Job.id).where(Job.peer != recorder.url(""))).one()
        peers = {job_id: peer for job_id, peer in session.execute(select(Job.id, Job.peer))}
    assert page_job in [job_id for job_id, _ in claimed]
    assert sum(1 for job_id, _ in claimed if peers[job_id] == recorder.url("")) == 2
    assert len(stranded) == 4 and page
