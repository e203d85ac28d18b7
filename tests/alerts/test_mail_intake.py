"""Alerts by email: a real SMTP conversation (smtplib) with the mail intake that ``warroom serve`` runs."""

from __future__ import annotations

import asyncio
import email.policy
import json
import logging
import re
import smtplib
import ssl
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from sqlalchemy import func, inspect, select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG, require_peer
from tests.peers import free_port, self_signed_certificate
from warroom.alerts import mail
from warroom.alerts.adapters import (
    MIME_MAX_DEPTH,
    MIME_MAX_PARTS,
    InvalidPayload,
    delivery_events,
    from_email,
    looks_like_mail,
    subject_state,
)
from warroom.alerts.mail import MailTLSError, tls_context
from warroom.alerts.models import Alert, AlertStatus
from warroom.app import create_app
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.incidents.models import Incident
from warroom.settings import Settings


def message(subject: str, body: str = "", sender: str = "nagios@mon.example", **headers: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "alerts@warroom.example"
    mail["Subject"] = subject
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body or f"{subject}\n")
    return mail


@pytest.mark.parametrize(
    ("subject", "identity", "state"),
    [
        ("** PROBLEM Service Alert: web01/HTTP is CRITICAL **", "Service Alert: web01/HTTP", "problem"),
        ("** RECOVERY Service Alert: web01/HTTP is OK **", "Service Alert: web01/HTTP", "recovery"),
        ("Problem: High CPU on db1", "High CPU on db1", "problem"),
        ("Resolved: High CPU on db1", "High CPU on db1", "resolved"),
        # Zabbix 5 and later: "Resolved in {EVENT.DURATION}: …", "Updated problem in {EVENT.AGE}: …".
        ("Resolved in 5m 0s: Disk space low on nas", "Disk space low on nas", "resolved"),
        ("Resolved in 1h 2m 3s: Disk space low on nas", "Disk space low on nas", "resolved"),
        ("Resolved in 1d 2h 3m: Disk space low on nas", "Disk space low on nas", "resolved"),
        ("Resolved in 30s: Disk space low on nas", "Disk space low on nas", "resolved"),
        ("Resolved in 1y 2M 3w: Disk space low on nas", "Disk space low on nas", "resolved"),
        ("Updated problem in 2h 5m: Disk space low on nas", "Disk space low on nas", "updated problem"),
        # "in" that is no duration stays part of the name.
        ("Resolved in production: Disk space low", "in production: Disk space low", "resolved"),
        ("[FIRING:2] DiskFull (nas1)", "DiskFull (nas1)", "firing:2"),
        ("[RESOLVED] DiskFull (nas1)", "DiskFull (nas1)", "resolved"),
        ("[OK] Disk usage", "Disk usage", "ok"),
        ("Re: Fwd: Backup job nightly failed", "Backup job nightly failed", None),
        # A word that only starts like a state is no state.
        ("Okta login failing", "Okta login failing", None),
        ("Update available for nas1", "Update available for nas1", None),
        # A state word alone names nothing (it named an alert "RESOLVED").
        ("RESOLVED", "", "resolved"),
        ("[FIRING:1]", "", "firing:1"),
        ("** PROBLEM **", "", "problem"),
    ],
)
def test_the_subject_names_the_alert_and_its_state(subject: str, identity: str, state: str | None) -> None:
    assert subject_state(subject) == (identity, state)


def test_a_problem_and_its_recovery_are_one_alert() -> None:
    problem = from_email(message("** PROBLEM Service Alert: web01/HTTP is CRITICAL **").as_bytes())
    recovery = from_email(message("** RECOVERY Service Alert: web01/HTTP is OK **").as_bytes())
    assert (problem.action, problem.severity) == ("trigger", "critical")
    assert recovery.action == "resolve"
    assert problem.dedup_key == recovery.dedup_key
    assert problem.labels == {"alertname": "Service Alert: web01/HTTP", "from": "nagios@mon.example"}
    # Another sender's same subject is another alert.
    other = from_email(
        message("** PROBLEM Service Alert: web01/HTTP is CRITICAL **", sender="b@x.example").as_bytes()
    )
    assert other.dedup_key != problem.dedup_key


def test_a_subject_that_is_only_a_state_word_is_named_by_the_body_or_refused() -> None:
    """`Subject: RESOLVED` opened a firing alert named "RESOLVED"."""
    problem = from_email(message("FIRING", "disk full on db1\nat 99%").as_bytes())
    recovery = from_email(message("RESOLVED", "disk full on db1").as_bytes())
    assert (problem.action, recovery.action) == ("trigger", "resolve")
    assert problem.labels["alertname"] == recovery.labels["alertname"] == "disk full on db1"
    assert problem.dedup_key == recovery.dedup_key
    assert problem.summary == "FIRING: disk full on db1"
    for subject, body, what in [
        ("RESOLVED", "", "resolve"),
        ("[OK]", "OK", "resolve"),
        ("PROBLEM", "", "open"),
    ]:
        with pytest.raises(InvalidPayload) as refused:
            from_email(message(subject, body or "\n").as_bytes())
        assert refused.value.message == (
            f"the subject {subject!r} is only a state word and the body names nothing: no alert to {what}; "
            "name the alert in the subject, after the state word"
        )
    # A key names the alert outright.
    keyed = from_email(message("RESOLVED", "\n", X_Warroom_Dedup_Key="backup-nightly").as_bytes())
    assert (keyed.action, keyed.dedup_key) == ("resolve", "backup-nightly")


def test_headers_say_it_outright_and_html_is_read_as_text() -> None:
    mail = message("nightly backup", X_Warroom_Status="resolved", X_Warroom_Severity="warning")
    mail["X-Warroom-Dedup-Key"] = "backup-nightly"
    mail.add_alternative(
        "<html><style>p{}</style><p>3 of 4 volumes copied</p><p>see the log</p></html>", "html"
    )
    event = from_email(mail.as_bytes())
    assert (event.action, event.severity, event.dedup_key) == ("resolve", "warning", "backup-nightly")
    html_only = EmailMessage()
    html_only["Subject"] = "UPS on battery"
    html_only.set_content("<p>Load 40%</p><script>x()</script><p>Runtime 12 min</p>", subtype="html")
    assert from_email(html_only.as_bytes()).annotations["description"] == "Load 40%\nRuntime 12 min"


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X_Warroom_Status": "exploded"}, "X-Warroom-Status"),
        ({"X_Warroom_Severity": "meh"}, "X-Warroom-Severity"),
    ],
)
def test_a_bad_header_is_refused(headers: dict[str, str], field: str) -> None:
    with pytest.raises(InvalidPayload) as refused:
        from_email(message("disk full", **headers).as_bytes())
    assert refused.value.details[0]["field"] == field


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=2000),
        st.builds(
            lambda headers, body: (headers + "\r\n\r\n" + body).encode("utf-8", "surrogatepass"),
            st.text(max_size=500),
            st.text(max_size=500),
        ),
        st.builds(
            lambda subject, charset, body: (
                f"Subject: {subject}\r\nContent-Type: text/plain; charset={charset}\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{body}"
            ).encode("utf-8", "surrogatepass"),
            st.text(max_size=100),
            st.sampled_from(["utf-8", "x-unknown", "", "utf-7", "latin-1"]),
            st.text(alphabet="ABCDEFGHabcdefgh0123456789+/=\r\n", max_size=200),
        ),
    )
)
def test_any_bytes_are_an_alert_or_a_clear_refusal(raw: bytes) -> None:
    try:
        event = from_email(raw)
    except InvalidPayload as refused:
        assert refused.message
        return
    assert event.summary and event.dedup_key and event.severity in ("critical", "error", "warning", "info")


@pytest.fixture
def mail_port(context: AppContext, settings: Settings) -> Iterator[int]:
    """The app, started with its mail intake on a free port."""
    port = free_port()
    with_mail = settings.model_copy(update={"mail_intake_port": port})
    served = AppContext(settings=with_mail, db=context.db, org=context.org)
    with TestClient(create_app(context=served)):
        yield port


def send(port: int, to: list[str], mail: EmailMessage | bytes) -> Any:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        # As an MTA sends it: CRLF line ends.
        raw = mail if isinstance(mail, bytes) else mail.as_bytes(policy=email.policy.SMTP)
        client.ehlo()
        client.mail("nagios@mon.example")
        for address in to:
            code, answer = client.rcpt(address)
            if code != 250:
                return code, answer.decode()
        code, answer = client.data(raw)
        return code, answer.decode()


def counts(context: AppContext) -> tuple[int, int]:
    with context.db.read() as session:
        alerts = session.scalar(select(func.count()).select_from(Alert)) or 0
        incidents = session.scalar(select(func.count()).select_from(Incident)) or 0
    return alerts, incidents


def rejected(reason: str) -> float:
    labels = {"source": "email", "reason": reason}
    return REGISTRY.get_sample_value("warroom_alert_deliveries_rejected_total", labels) or 0


def create_email_key(api: TestClient, admin: dict[str, str], **fields: Any) -> str:
    created = api.post(
        "/api/v1/integrations", json={"name": "nagios", "type": "email", **fields}, headers=admin
    )
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


def test_a_mail_opens_an_alert_and_its_recovery_resolves_it(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin, service="payments")
    problem = message("** PROBLEM Service Alert: psp/charges is CRITICAL **", "charges failing: 503 from PSP")
    code, answer = send(mail_port, [f"{key}@alerts.warroom.example"], problem)
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created")
    with context.db.read() as session:
        alert = session.get_one(Alert, 1)
        assert (alert.source, alert.severity, alert.service) == ("email", "critical", "payments")
        assert alert.annotations["description"] == "charges failing: 503 from PSP"
        assert alert.incident_id is not None  # the payments-down rule matches the integration's service
    # The same message again (the MTA retried) changes nothing.
    assert (
        send(mail_port, [f"{key.upper()}@alerts.warroom.example"], problem)[1] == "2.0.0 OK: ALR-1 unchanged"
    )
    recovery = message("** RECOVERY Service Alert: psp/charges is OK **")
    assert send(mail_port, [f"{key}@alerts.warroom.example"], recovery) == (250, "2.0.0 OK: ALR-1 resolved")
    with context.db.read() as session:
        alert = session.get_one(Alert, 1)
        assert (alert.status, alert.occurrences) == (AlertStatus.resolved, 1)


def test_refused_mail_stores_nothing(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin)
    other = api.post("/api/v1/integrations", json={"name": "am", "type": "generic"}, headers=admin).json()
    revoked = create_email_key(api, admin, name="nagios-old")
    revoked_id = api.get("/api/v1/integrations", headers=admin).json()[-1]["id"]
    assert api.delete(f"/api/v1/integrations/{revoked_id}", headers=admin).status_code == 200
    reasons = ("unauthorized", "forbidden", "invalid_payload", "payload_too_large")
    before = {reason: rejected(reason) for reason in reasons}
    good = message("disk full on nas1")
    for address, why in [
        ("ops@alerts.example", "must be an email integration's key"),
        (f"{'0' * 32}@alerts.example", "unknown or revoked"),
        (f"{revoked}@alerts.example", "unknown or revoked"),
        (f"{other['key']}@alerts.example", "not an email integration's"),
    ]:
        code, answer = send(mail_port, [address], good)
        assert code == 550 and why in answer, (address, answer)
    code, answer = send(mail_port, [f"{key}@a.example"], message("disk full", X_Warroom_Status="exploded"))
    assert code == 554 and "X-Warroom-Status 'exploded'" in answer
    code, why = send(mail_port, [f"{key}@a.example"], message("huge", ("x" * 70 + "\n") * 16_000))
    assert code == 552, why
    with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:  # a size declared up front
        client.ehlo()
        assert client.mail("nagios@mon.example", ["SIZE=2000000"])[0] == 552
    code, why = send(mail_port, [f"{key}@a.example"], b"Subject: long\r\n\r\n" + b"x" * 2000 + b"\r\n")
    assert code == 500, why  # a line over SMTP's 1,000 characters
    assert counts(context) == (0, 0)
    # Each refusal is counted, as the HTTP intake's are (the alerting rule on refusals sees mail too).
    assert {reason: rejected(reason) - count for reason, count in before.items()} == {
        "unauthorized": 3,
        "forbidden": 1,
        "invalid_payload": 2,
        "payload_too_large": 2,
    }


def test_a_resolve_that_names_nothing_is_refused_at_data(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin)
    code, answer = send(mail_port, [f"{key}@a.example"], message("RESOLVED"))
    assert code == 554 and "'RESOLVED' is only a state word" in answer, answer
    assert counts(context) == (0, 0)


def test_a_blank_message_is_refused_at_data(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    """A blank subject and body opened an alert called "(no subject)", another for each sender."""
    key = create_email_key(api, admin)
    before = rejected("invalid_payload")
    for subject, sender in [("", "x@y.example"), ("   ", "z@y.example")]:
        blank = f"From: {sender}\r\nTo: {key}@a.example\r\nSubject: {subject}\r\n\r\n \r\n".encode()
        code, answer = send(mail_port, [f"{key}@a.example"], blank)
        assert (code, answer) == (
            554,
            "5.6.0 the message has no subject and no body: no alert to open; name the alert in the subject",
        )
    assert counts(context) == (0, 0)
    assert rejected("invalid_payload") - before == 2
    # The body may name it, and so may the sender's dedup key.
    named = from_email(b"From: x@y.example\r\nSubject: \r\n\r\nUPS on battery\r\n")
    assert (named.summary, named.labels["alertname"]) == ("UPS on battery", "UPS on battery")
    keyed = from_email(b"From: x@y.example\r\nSubject: \r\nX-Warroom-Dedup-Key: ups-1\r\n\r\n\r\n")
    assert (keyed.dedup_key, keyed.summary) == ("ups-1", "(no subject)")


def test_one_mail_to_two_integrations_is_an_alert_for_each(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    first = create_email_key(api, admin)
    second = create_email_key(api, admin, name="nagios-search", service="search")
    code, answer = send(mail_port, [f"{first}@a.example", f"{second}@a.example"], message("index stale"))
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created, ALR-2 created")
    with context.db.read() as session:
        assert [a.service for a in session.scalars(select(Alert).order_by(Alert.id))] == [None, "search"]


def test_senders_at_once_are_all_stored(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    """Four MTAs deliver at once: every recipient check and every message succeeds (a check that took the
    SQLite write lock inside a read transaction failed at once while another message was being stored)."""
    key = create_email_key(api, admin)
    answers: list[tuple[int, str]] = []

    def deliver(sender: int) -> None:
        for number in range(15):
            mail = message(f"PROBLEM: queue {sender}-{number % 5} is stuck", f"depth {number}")
            answers.append(send(mail_port, [f"{key}@a.example"], mail))

    threads = [threading.Thread(target=deliver, args=(sender,)) for sender in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted({code for code, _ in answers}) == [250] and len(answers) == 60, answers
    with context.db.read() as session:
        rows = session.execute(select(func.count(), func.sum(Alert.occurrences))).one()
    assert tuple(rows) == (20, 60)


def test_nul_and_undecodable_bytes_are_stored_as_replacement_characters(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    """PostgreSQL stores no NUL, and the parser keeps bytes that are not UTF-8 as lone surrogates: a message
    with either is stored (not refused with 451 forever, which would make its MTA retry it for days)."""
    key = create_email_key(api, admin)
    raw = (
        b"From: ups@power.example\r\nSubject: UPS \xff\xfe on battery\x00\r\nX-Odd: caf\xe9\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nload 40%\x00 runtime \xc3\x28 12 min\r\n"
    )
    code, answer = send(mail_port, [f"{key}@a.example"], raw)
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created")
    with context.db.read() as session:
        alert = session.get_one(Alert, 1)
        assert "\x00" not in alert.summary and "on battery" in alert.summary
        assert alert.annotations["description"].startswith("load 40%\ufffd runtime")


@pytest.mark.parametrize(
    ("body", "is_mail"),
    [
        (message("disk full").as_bytes(), True),
        (message("disk full").as_bytes(policy=email.policy.SMTP), True),
        (b"Received: from mx1 by mx2; Mon, 2 Mar 2026 10:00:00 +0000\r\nSubject: x\r\n\r\nbody", True),
        (b"X-Mailer: nas-os 7\n\nno subject at all", True),
        (b'{"summary": "disk full", "severity": "critical"}', False),
        (b'  [{"summary": "x"}]', False),
        (b"{not json", False),
        (b"", False),
        # A header name only in the body is not a header block.
        (b"disk full\n\nSubject: x", False),
    ],
)
def test_a_saved_mail_is_told_from_json(body: bytes, is_mail: bool) -> None:
    assert looks_like_mail(body) is is_mail


def test_a_saved_mail_is_a_delivery_like_any_other() -> None:
    raw = message("** PROBLEM Service Alert: nas1/RAID is CRITICAL **", "degraded: disk 3").as_bytes()
    kind, [event] = delivery_events(raw)
    assert kind == "email" and event == from_email(raw)
    assert delivery_events(raw, "email")[0] == "email"
    # Told outright, a JSON body is read as mail, as the mail intake would: a message with no subject (its
    # one line a header) and no body, which names no alert.
    with pytest.raises(InvalidPayload, match="no subject and no body"):
        delivery_events(b'{"summary": "x"}', "email")
    assert delivery_events(b'{"summary": "x"}')[0] == "generic"
    with pytest.raises(InvalidPayload):
        delivery_events(raw, "generic")  # not JSON


def test_config_test_alert_reads_a_saved_mail(tmp_path: Path) -> None:
    saved = tmp_path / "nas.eml"
    saved.write_bytes(
        message("** PROBLEM Service Alert: psp/charges is CRITICAL **", "503 from PSP").as_bytes(
            policy=email.policy.SMTP
        )
    )
    runner = CliRunner()
    shown = runner.invoke(app, ["config", "test-alert", str(saved), "--config", str(EXAMPLE_CONFIG)])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.stdout.split())
    assert "Service Alert: psp/charges is CRITICAL ** (email, critical, type email, service -)" in text
    assert "payments-down" in text and "-> unrouted" in text  # no service without the integration's
    as_json = runner.invoke(
        app, ["config", "test-alert", str(saved), "--json", "--config", str(EXAMPLE_CONFIG)]
    )
    [preview] = json.loads(as_json.stdout)
    assert preview["source"] == "email" and preview["severity"] == "critical"
    bad = tmp_path / "bad.eml"
    bad.write_bytes(message("disk full", X_Warroom_Status="exploded").as_bytes())
    refused = runner.invoke(app, ["config", "test-alert", str(bad), "--config", str(EXAMPLE_CONFIG)])
    assert refused.exit_code == 1 and "X-Warroom-Status 'exploded'" in refused.output


def test_the_server_preview_of_a_mail_knows_its_open_alert(
    api: TestClient, context: AppContext, admin: dict[str, str], viewer: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin, service="payments")
    integration_id = api.get("/api/v1/integrations", headers=admin).json()[-1]["id"]
    problem = message("** PROBLEM Service Alert: psp/charges is CRITICAL **", "503 from PSP")

    def preview(mail: EmailMessage, **params: Any) -> dict[str, Any]:
        body = mail.as_bytes(policy=email.policy.SMTP)
        response = api.post("/api/v1/alerts/preview", content=body, params=params, headers=viewer)
        assert response.status_code == 200, response.text
        [shown] = response.json()
        return shown  # type: ignore[no-any-return]

    # Before it is sent: with the integration, its default service routes it to the payments rule.
    first = preview(problem, integration=integration_id)
    assert (first["source"], first["service"], first["open_alert"]) == ("email", "payments", None)
    assert first["incident"]["rule"] == "payments-down"
    unscoped = preview(problem)  # without it, no service: no rule routes it
    assert unscoped["service"] is None and unscoped["unrouted"] and unscoped["incident"] is None
    assert counts(context) == (0, 0)  # a dry run

    assert send(mail_port, [f"{key}@a.example"], problem) == (250, "2.0.0 OK: ALR-1 created")
    again = preview(problem, integration=integration_id)
    assert again["open_alert"] == "ALR-1"
    # Its recovery mail is the same alert.
    recovery = message("** RECOVERY Service Alert: psp/charges is OK **")
    assert preview(recovery, source="email", integration=integration_id)["open_alert"] == "ALR-1"
    # Refusals change nothing.
    generic_id = api.post(
        "/api/v1/integrations", json={"name": "app", "type": "generic"}, headers=admin
    ).json()["id"]
    for body, params, status in (
        (problem.as_bytes(), {"integration": generic_id}, 422),  # a generic integration takes no mail
        (message("x", X_Warroom_Severity="meh").as_bytes(), {}, 400),
    ):
        refused = api.post("/api/v1/alerts/preview", content=body, params=params, headers=viewer)
        assert refused.status_code == status, refused.text
    assert counts(context)[0] == 1


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (the openssl CLI)."""
    made = self_signed_certificate(tmp_path)
    require_peer(made is not None, "openssl is needed to make a test certificate")
    assert made is not None
    return Path(made[0]), Path(made[1])


def trusting(certificate: Path) -> ssl.SSLContext:
    """A client context that trusts the self-signed certificate (and checks the host name against it)."""
    return ssl.create_default_context(cafile=str(certificate))


@pytest.mark.parametrize("require_tls", [True, False])
def test_starttls_is_offered_and_required_by_default(
    api: TestClient,
    context: AppContext,
    settings: Settings,
    admin: dict[str, str],
    certificate: tuple[Path, Path],
    require_tls: bool,
) -> None:
    key = create_email_key(api, admin)
    port = free_port()
    with_tls = settings.model_copy(
        update={
            "mail_intake_port": port,
            "mail_intake_tls_cert": certificate[0],
            "mail_intake_tls_key": certificate[1],
            "mail_intake_require_tls": require_tls,
        }
    )
    with TestClient(create_app(context=AppContext(settings=with_tls, db=context.db, org=context.org))):
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as plain:
            plain.ehlo()
            assert plain.has_extn("starttls")
            code, answer = plain.mail("nagios@mon.example")
            if require_tls:
                assert code == 530 and b"STARTTLS" in answer, answer
            else:
                assert code == 250
                assert plain.rcpt(f"{key}@a.example")[0] == 250
                assert plain.data(message("sent in the clear").as_bytes())[0] == 250
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as secured:
            secured.starttls(context=trusting(certificate[0]))
            assert secured.send_message(message("sent over TLS"), to_addrs=[f"{key}@a.example"]) == {}
    with context.db.read() as session:
        summaries = set(session.scalars(select(Alert.summary)))
    assert summaries == ({"sent over TLS"} if require_tls else {"sent in the clear", "sent over TLS"})


def test_an_unusable_certificate_is_a_clear_error_at_start(
    settings: Settings, certificate: tuple[Path, Path], tmp_path: Path
) -> None:
    cert, key = certificate
    (tmp_path / "other").mkdir()
    other = self_signed_certificate(tmp_path / "other")
    assert other is not None
    other_key = Path(other[1])
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    for update, problem in [
        ({"mail_intake_tls_key": other_key}, "without its certificate"),
        ({"mail_intake_tls_cert": tmp_path / "missing.pem"}, "cannot read"),
        ({"mail_intake_tls_cert": garbage}, "not usable"),
        ({"mail_intake_tls_cert": cert, "mail_intake_tls_key": other_key}, "not usable"),
        ({"mail_intake_tls_cert": cert}, "not usable"),  # no key in the file, and none given
    ]:
        with pytest.raises(MailTLSError, match=problem):
            tls_context(settings.model_copy(update=update))
    assert tls_context(settings) is None
    both = tmp_path / "both.pem"  # the key may be in the certificate file
    both.write_text(key.read_text() + cert.read_text())
    for update in (
        {"mail_intake_tls_cert": cert, "mail_intake_tls_key": key},
        {"mail_intake_tls_cert": both},
    ):
        assert isinstance(tls_context(settings.model_copy(update=update)), ssl.SSLContext)
    refused = CliRunner().invoke(
        app,
        [
            "serve",
            "--config",
            str(EXAMPLE_CONFIG),
            "--mail-port",
            str(free_port()),
            "--mail-tls-cert",
            str(garbage),
        ],
    )
    assert refused.exit_code == 1 and "not usable" in refused.output


BOUNCE = (
    b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver it.\r\n"
    b"--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n"
    b"Final-Recipient: rfc822; ops@acme.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--b--\r\n"
)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (
            message("Out of office: PROBLEM disk full", Auto_Submitted="auto-replied").as_bytes(),
            "auto-replied",
        ),
        (message("Automatic reply: disk full", Precedence="auto_reply").as_bytes(), "Precedence: auto_reply"),
        (message("Re: disk full", X_Autoreply="yes").as_bytes(), "X-Autoreply: yes"),
        (BOUNCE, "a bounce"),
        (BOUNCE.replace(b"delivery-status;", b"disposition-notification;"), "a read receipt"),
    ],
)
def test_automatic_replies_are_not_alerts(raw: bytes, why: str) -> None:
    with pytest.raises(InvalidPayload, match=f"an automatic reply is not an alert \\(.*{re.escape(why)}"):
        from_email(raw)


def test_mail_a_tool_generated_is_an_alert() -> None:
    """cron and monitoring tools mark their mail auto-generated: that is what the intake is for."""
    cron = message(
        "Cron <root@db1> /usr/local/bin/backup.sh", "pg_dump: error", Auto_Submitted="auto-generated"
    )
    cron["Precedence"] = "bulk"
    cron["X-Autoreply"] = "no"
    assert from_email(cron.as_bytes()).summary == "Cron <root@db1> /usr/local/bin/backup.sh"


def test_an_out_of_office_reply_is_refused_and_stores_nothing(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin)
    ooo = message("Out of office: Re: [FIRING:1] DiskFull", "Back on Monday.", Auto_Submitted="auto-replied")
    code, answer = send(mail_port, [f"{key}@a.example"], ooo)
    assert code == 554 and "an automatic reply is not an alert" in answer
    code, answer = send(mail_port, [f"{key}@a.example"], BOUNCE)
    assert code == 554 and "a bounce" in answer
    assert counts(context) == (0, 0)


def many_parts(count: int) -> bytes:
    """A message of ``count`` MIME parts, itself included."""
    parts = b"".join(b"--T\r\nContent-Type: text/plain\r\n\r\npart\r\n" for _ in range(count - 1))
    return (
        b"From: nas@x.example\r\nSubject: disk full on nas1\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=T\r\n\r\n" + parts + b"--T--\r\n"
    )


def nested_parts(depth: int) -> bytes:
    """A message whose parts nest ``depth`` deep, itself included."""
    head = b"From: nas@x.example\r\nSubject: disk full on nas1\r\nMIME-Version: 1.0\r\n"
    opening = b"Content-Type: multipart/mixed; boundary=B1\r\n\r\n" + b"".join(
        b"--B%d\r\nContent-Type: multipart/mixed; boundary=B%d\r\n\r\n" % (level, level + 1)
        for level in range(1, depth - 1)
    )
    innermost = b"--B%d\r\nContent-Type: text/plain\r\n\r\nDisk 3 failed\r\n" % (depth - 1)
    closing = b"".join(b"--B%d--\r\n" % level for level in range(depth - 1, 0, -1))
    return head + opening + innermost + closing


def attached_messages(depth: int) -> bytes:
    """A message that is an attached message in an attached message …, ``depth`` deep (30 bytes a level)."""
    return (
        b"Subject: disk full on nas1\r\n"
        + b"Content-Type: message/rfc822\r\n\r\n" * (depth - 1)
        + b"Subject: inner\r\n\r\nDisk 3 failed\r\n"
    )


def test_a_message_of_too_many_or_too_deep_parts_is_refused() -> None:
    """A 900 KB message of 90,000 parts took 12 s to read, and parts nested thousands deep overflowed the
    parser's recursion: each is refused as soon as it is over the limit."""
    assert from_email(many_parts(MIME_MAX_PARTS)).summary == "disk full on nas1"
    for raw in (many_parts(MIME_MAX_PARTS + 1), many_parts(90_000)):
        with pytest.raises(InvalidPayload) as refused:
            from_email(raw)
        assert refused.value.message == f"the message cannot be read: it has over {MIME_MAX_PARTS} parts"
    deep = from_email(nested_parts(MIME_MAX_DEPTH))
    assert (deep.summary, deep.annotations["description"]) == ("disk full on nas1", "Disk 3 failed")
    assert from_email(attached_messages(MIME_MAX_DEPTH)).summary == "disk full on nas1"
    for raw in (
        nested_parts(MIME_MAX_DEPTH + 1),
        nested_parts(3000),
        attached_messages(MIME_MAX_DEPTH + 1),
        attached_messages(30_000),
    ):
        with pytest.raises(InvalidPayload) as refused:
            from_email(raw)
        assert refused.value.message == (
            f"the message cannot be read: it has parts nested over {MIME_MAX_DEPTH} deep"
        )


def test_mail_of_too_many_or_too_deep_parts_is_refused_at_data(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin)
    before = rejected("invalid_payload")
    code, answer = send(mail_port, [f"{key}@a.example"], many_parts(5000))
    assert (code, answer) == (554, f"5.6.0 the message cannot be read: it has over {MIME_MAX_PARTS} parts")
    code, answer = send(mail_port, [f"{key}@a.example"], nested_parts(3000))
    assert (code, answer) == (
        554,
        f"5.6.0 the message cannot be read: it has parts nested over {MIME_MAX_DEPTH} deep",
    )
    assert rejected("invalid_payload") - before == 2
    assert counts(context) == (0, 0)


def test_a_message_is_read_off_the_event_loop(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    mail_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SMTP server shares the web server's event loop: a message read on it held up every request."""
    key = create_email_key(api, admin)
    on_loop: list[bool] = []
    read = mail.from_email

    def spy(raw: bytes, rules: Any = (), keys: Any = (), envelope_sender: str = "") -> Any:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return read(raw, rules, keys, envelope_sender)

    monkeypatch.setattr(mail, "from_email", spy)
    assert send(mail_port, [f"{key}@a.example"], message("disk full on nas1"))[0] == 250
    assert on_loop == [False]


def test_the_smtp_log_names_no_key(
    api: TestClient,
    context: AppContext,
    settings: Settings,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """aiosmtpd logged each command line at INFO, "rcpt TO:<KEY@…>" among them: the address is the secret."""
    key = create_email_key(api, admin)
    smtp_log = logging.getLogger(mail.SMTP_LOGGER)
    smtp_log.setLevel(logging.NOTSET)  # as it is until the intake starts
    caplog.set_level(logging.INFO)
    port = free_port()
    served = AppContext(
        settings=settings.model_copy(update={"mail_intake_port": port}), db=context.db, org=context.org
    )
    with TestClient(create_app(context=served)):
        assert smtp_log.getEffectiveLevel() == logging.WARNING
        assert send(port, [f"{key}@a.example"], message("disk full on nas1"))[0] == 250
        # Logged on purpose (debugging an MTA), its lines still name no key, in either case.
        caplog.set_level(logging.DEBUG, logger=mail.SMTP_LOGGER)
        assert send(port, [f"{key.upper()}@a.example"], message("disk full on nas2"))[0] == 250
    smtp_lines = [record.getMessage() for record in caplog.records if record.name == mail.SMTP_LOGGER]
    assert any("rcpt" in line.lower() and mail.REDACTED_KEY in line for line in smtp_lines), smtp_lines
    assert key not in caplog.text.lower()
    assert counts(context)[0] == 2


def test_the_integration_key_is_stored_nowhere_and_shown_to_no_one(
    api: TestClient, context: AppContext, admin: dict[str, str], viewer: dict[str, str], mail_port: int
) -> None:
    """The address is an email integration's only secret, and a viewer read it in the stored headers
    (``Received: … for <KEY@…>``, ``Delivered-To``, ``X-Original-To``, ``To``). Now every copy, in any case
    and however the message encodes it (an encoded-word subject, a quoted-printable body that breaks the
    key across lines), is ``[key]`` before anything is stored."""
    key = create_email_key(api, admin)
    other = create_email_key(api, admin, name="nagios-search")
    address, shouted = f"{key}@warroom.acme.example", f"{key.upper()}@WARROOM.ACME.EXAMPLE"
    folded = f"{key[:20]}=\r\n{key[20:]}"  # a soft line break inside the key
    raw = (
        f"Received: from mon.example (mon.example [10.0.0.5])\r\n"
        f"\tby mx.acme.example with ESMTP id 4F2A1 for <{address}>; Mon, 2 Mar 2026 09:40:00 +0000\r\n"
        f"Delivered-To: {shouted}\r\n"
        f"X-Original-To: {address}\r\n"
        f"From: zabbix@mon.example\r\n"
        f"To: {address}, {other}@warroom.acme.example\r\n"
        f"Subject: =?utf-8?q?Problem:_Disk_space_low_on_nas_(to_{key})?=\r\n"
        f"Message-ID: <{key}@mon.example>\r\n"
        f"MIME-Version: 1.0\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n"
        f"\r\n"
        f"---------- Forwarded message ---------\r\n"
        f"To: {folded}@warroom.acme.example\r\n"
        f"Free space on /volume1: 3%\r\n"
    ).encode()
    code, answer = send(mail_port, [address, f"{other.upper()}@warroom.acme.example"], raw)
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created, ALR-2 created")

    seen = []
    for ref in ("ALR-1", "ALR-2"):
        shown = api.get(f"/api/v1/alerts/{ref}", headers=viewer)
        assert shown.status_code == 200, shown.text
        seen.append(shown.text)
        alert = shown.json()
        headers = dict(alert["raw"]["headers"])
        assert headers["Delivered-To"] == "[key]@WARROOM.ACME.EXAMPLE"
        assert headers["X-Original-To"] == "[key]@warroom.acme.example"
        assert headers["To"] == "[key]@warroom.acme.example, [key]@warroom.acme.example"
        assert "for <[key]@warroom.acme.example>" in headers["Received"]
        assert alert["summary"] == "Problem: Disk space low on nas (to [key])"
        assert "To: [key]@warroom.acme.example" in alert["raw"]["body"]
    seen.append(api.get("/api/v1/alerts", headers=viewer).text)
    for text in seen:
        assert key not in text.lower() and other not in text.lower()
    # Nor anywhere in the database: not in a label, an annotation, a dedup key or a timeline.
    with context.db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'):
                text = " ".join(str(value) for value in row).lower()
                assert key not in text and other not in text, (table, row)


def test_zabbixs_recovery_and_update_mails_are_its_problems_alert(
    api: TestClient, context: AppContext, admin: dict[str, str], mail_port: int, tmp_path: Path
) -> None:
    """Zabbix 5 and 6 send "Resolved in 5m 0s: …" by default: it was answered "nothing to change", as an
    alert named "in 5m 0s: …", and the problem stayed open."""
    key = create_email_key(api, admin)
    to = [f"{key}@warroom.acme.example"]
    problem = message("Problem: Disk space low on nas", "Free space: 3%", sender="zabbix@mon.example")
    assert send(mail_port, to, problem) == (250, "2.0.0 OK: ALR-1 created")
    update = message(
        "Updated problem in 2m 10s: Disk space low on nas", "Acknowledged by ann", "zabbix@mon.example"
    )
    assert send(mail_port, to, update)[0] == 250
    recovery = message(
        "Resolved in 5m 0s: Disk space low on nas", "Free space: 30%", sender="zabbix@mon.example"
    )
    assert send(mail_port, to, recovery) == (250, "2.0.0 OK: ALR-1 resolved")
    with context.db.read() as session:
        alert = session.get_one(Alert, 1)
        assert alert.status == AlertStatus.resolved
        assert alert.labels["alertname"] == "Disk space low on nas"
    assert counts(context)[0] == 1
    # ``config test-alert`` agrees: the recovery resolves the problem's alert.
    saved = tmp_path / "resolved.eml"
    saved.write_bytes(recovery.as_bytes(policy=email.policy.SMTP))
    runner = CliRunner()
    shown = runner.invoke(
        app, ["config", "test-alert", str(saved), "--json", "--config", str(EXAMPLE_CONFIG)]
    )
    assert shown.exit_code == 0, shown.output
    [preview] = json.loads(shown.stdout)
    assert preview["labels"]["alertname"] == "Disk space low on nas", preview
    assert preview["dedup_key"] == from_email(problem.as_bytes()).dedup_key, preview
    assert preview["action"] == "resolve", preview
