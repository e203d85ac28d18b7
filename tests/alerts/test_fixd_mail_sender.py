"""Mail without a ``From:`` header: the SMTP envelope's sender (``MAIL FROM``) is its sender, so that two
hosts' mails with the same subject stay two alerts (the dedup key is the sender plus the subject)."""

from __future__ import annotations

import smtplib

from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_mail_intake import create_email_key, mail_port  # noqa: F401 (a fixture)
from warroom.alerts.adapters import from_email
from warroom.alerts.models import Alert
from warroom.context import AppContext

RAW = b"Subject: Backup FAILED on host\r\n\r\nx\r\n"


def send_from(port: int, sender: str, to: str, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.mail(sender)
        code, answer = client.rcpt(to)
        assert code == 250, answer
        code, answer = client.data(raw)
        return code, answer.decode()


def test_two_hosts_mails_without_a_from_header_are_two_alerts(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    mail_port: int,  # noqa: F811
) -> None:
    key = create_email_key(api, admin)
    to = f"{key}@alerts.warroom.example"
    assert send_from(mail_port, "root@hostA.example", to, RAW) == (250, "2.0.0 OK: ALR-1 created")
    assert send_from(mail_port, "root@hostB.example", to, RAW) == (250, "2.0.0 OK: ALR-2 created")
    assert send_from(mail_port, "root@hostB.example", to, RAW) == (250, "2.0.0 OK: ALR-2 unchanged")
    with context.db.read() as session:
        senders = [alert.labels["from"] for alert in session.scalars(select(Alert).order_by(Alert.id))]
    assert senders == ["root@hosta.example", "root@hostb.example"]


def test_the_from_header_wins_over_the_envelope_sender() -> None:
    raw = b"From: Cron <cron@db1.example>\r\n" + RAW
    event = from_email(raw, envelope_sender="bounces@relay.example")
    assert event.labels["from"] == "cron@db1.example"
    assert from_email(RAW, envelope_sender="<Root@HostA.example>").labels["from"] == "root@hosta.example"
    assert from_email(RAW, envelope_sender="").labels["from"] == ""
