"""Mail intake: every active integration key a message shows is taken out of what is stored, not only the
keys it was delivered to. A message to one integration that names another's key (``Cc: <key>@…``, a
forwarded message, a webhook URL in the body) showed that key to every viewer of the alert."""

from __future__ import annotations

import hashlib

from fastapi.testclient import TestClient
from sqlalchemy import inspect

from tests.alerts.test_mail_intake import create_email_key, mail_port, send
from warroom.context import AppContext

__all__ = ["mail_port"]  # a fixture, used by name


def create_key(api: TestClient, admin: dict[str, str], name: str, kind: str) -> tuple[int, str]:
    created = api.post("/api/v1/integrations", json={"name": name, "type": kind}, headers=admin)
    assert created.status_code == 201, created.text
    return created.json()["id"], created.json()["key"]


def test_other_integrations_keys_are_taken_out_of_the_stored_message(
    api: TestClient, context: AppContext, admin: dict[str, str], viewer: dict[str, str], mail_port: int
) -> None:
    recipient = create_email_key(api, admin)
    copied = create_email_key(api, admin, name="backup-mail")  # another email integration, in Cc
    _, webhook = create_key(api, admin, "ci", "webhook")  # not an email integration's: a secret all the same
    # The key a rotation replaced still works during its grace: a secret too.
    rotated_id, replaced = create_key(api, admin, "grafana", "grafana")
    rotation = api.post(f"/api/v1/integrations/{rotated_id}/rotate", json={"grace": "1h"}, headers=admin)
    assert rotation.status_code == 200, rotation.text
    rotated_new = rotation.json()["key"]
    revoked_id, revoked = create_key(api, admin, "gone", "email")
    assert api.delete(f"/api/v1/integrations/{revoked_id}", headers=admin).status_code == 200
    checksum = hashlib.md5(b"volume1").hexdigest()  # 32 hex digits that are no key: kept
    raw = (
        f"From: backup@nas.example\r\n"
        f"To: {recipient}@warroom.acme.example\r\n"
        f"Cc: {copied}@warroom.acme.example, {copied.upper()}@WARROOM.ACME.EXAMPLE\r\n"
        f"Subject: Backup failed (copy to {copied})\r\n"
        f"\r\n"
        f"Backup of volume1 failed, checksum {checksum}.\r\n"
        f"CI hook: https://warroom.acme.example/api/v1/alerts/webhook/ci?key={webhook.upper()}\r\n"
        f"Old Grafana key {replaced}, new {rotated_new}; a revoked one {revoked}.\r\n"
    ).encode()
    code, answer = send(mail_port, [f"{recipient}@warroom.acme.example"], raw)
    assert (code, answer) == (250, "2.0.0 OK: ALR-1 created")

    shown = api.get("/api/v1/alerts/ALR-1", headers=viewer)
    assert shown.status_code == 200, shown.text
    alert = shown.json()
    headers = dict(alert["raw"]["headers"])
    assert headers["Cc"] == "[key]@warroom.acme.example, [key]@WARROOM.ACME.EXAMPLE"
    assert alert["summary"] == "Backup failed (copy to [key])"
    body = alert["raw"]["body"]
    assert f"checksum {checksum}." in body
    assert "webhook/ci?key=[key]" in body
    assert "Old Grafana key [key], new [key];" in body
    # A revoked key opens nothing any more: no secret, so it is kept as the sender wrote it.
    assert f"a revoked one {revoked}." in body
    secrets = [recipient, copied, webhook, replaced, rotated_new]
    for text in (shown.text, api.get("/api/v1/alerts", headers=viewer).text):
        assert not [secret for secret in secrets if secret in text.lower()]
    with context.db.engine.connect() as connection:
        for table in inspect(connection).get_table_names():
            for row in connection.exec_driver_sql(f'SELECT * FROM "{table}"'):
                text = " ".join(str(value) for value in row).lower()
                assert not [secret for secret in secrets if secret in text], (table, row)


def test_hex_that_is_no_key_is_kept(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str], mail_port: int
) -> None:
    recipient = create_email_key(api, admin)
    checksum = hashlib.md5(b"nas1").hexdigest()
    raw = f"From: backup@nas.example\r\nSubject: Backup ok {checksum}\r\n\r\nall fine\r\n".encode()
    assert send(mail_port, [f"{recipient}@a.example"], raw)[0] == 250
    assert api.get("/api/v1/alerts/ALR-1", headers=viewer).json()["summary"] == f"Backup ok {checksum}"
