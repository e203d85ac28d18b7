"""Mail intake takes another integration's key out of a stored message also where it sits inside a longer
run of hex digits (``sha256=00<key>ff``): keys were looked for only between non-hex characters, so such a
key was stored, and every viewer of the alert could read it. Hex that holds no key is kept as it was."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient

from tests.alerts.test_mail_intake import create_email_key, mail_port, send
from tests.test_intakemisc_mail_keys import create_key
from warroom.alerts import mail
from warroom.context import AppContext

__all__ = ["mail_port"]  # a fixture, used by name


def test_a_key_inside_a_longer_hex_run_is_taken_out(
    api: TestClient, context: AppContext, admin: dict[str, str], viewer: dict[str, str], mail_port: int
) -> None:
    recipient = create_email_key(api, admin)
    _, webhook = create_key(api, admin, "ci", "webhook")
    _, grafana = create_key(api, admin, "grafana", "grafana")
    digest = hashlib.sha256(b"volume1").hexdigest()  # 64 hex digits that hold no key: kept
    raw = (
        f"From: backup@nas.example\r\n"
        f"Subject: Backup failed, token 7{webhook.upper()}0\r\n"
        f"\r\n"
        f"sha256=00{webhook}ff, digest {digest}.\r\n"
        f"dump {'ab' * 200}{grafana}{'cd' * 200}\r\n"
    ).encode()
    code, answer = send(mail_port, [f"{recipient}@warroom.acme.example"], raw)
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created")

    shown = api.get("/api/v1/alerts/ALR-1", headers=viewer)
    assert shown.status_code == 200, shown.text
    alert = shown.json()
    assert alert["summary"] == "Backup failed, token 7[key]0"
    body = alert["raw"]["body"]
    assert "sha256=00[key]ff," in body and f"digest {digest}." in body
    assert f"dump {'ab' * 200}[key]{'cd' * 200}" in body
    for text in (shown.text, api.get("/api/v1/alerts", headers=viewer).text):
        assert webhook not in text.lower() and grafana not in text.lower()


def test_the_windows_looked_up_are_bounded() -> None:
    run = "0" * 10 + "a" * 32
    assert mail._key_windows([run]) == {run[i : i + 32] for i in range(11)}
    huge = "".join(f"{n:08x}" for n in range(100_000))  # 800,000 hex digits in one run
    assert len(mail._key_windows([huge, "f" * 32])) <= mail.MAX_KEY_WINDOWS + 1
    assert "f" * 32 in mail._key_windows([huge, "f" * 32])  # an exact 32 always counts
