"""Secrets in what Warroom stores from outside (``alerts.scrub``): API tokens, integration keys and passwords
in URLs that a failed job printed, a message carried or a webhook described are not shown to viewers."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.alerts.test_mail_intake import create_email_key, mail_port, message, send
from warroom.alerts import scrub
from warroom.context import AppContext

__all__ = ["mail_port"]  # a fixture, used by name

CHECKSUM = "d41d8cd98f00b204e9800998ecf8427e"  # an md5 in a backup report: no secret, kept


def test_scrub_text_takes_out_tokens_keys_and_url_passwords() -> None:
    token = "wr_" + "A1b2-C3d4_" * 4 + "xyz"
    key = "0123456789abcdef0123456789abcdef"
    text = (
        f"export WARROOM_TOKEN={token}\n"
        f"curl https://warroom.example/api/v1/heartbeats/x?key={key}&x=1\n"
        "pg_dump postgresql://backup:HunterPass2@db/prod\n"
        "redis://:s3cret@cache:6379/0 and https://svc.example/cb?user=a&password=QueryPass&b=2\n"
        "PGPASSWORD=EnvPass pg_restore\n"
        f"md5 {CHECKSUM} ok; mail ops@example.com; see https://grafana.example/d/abc"
    )
    scrubbed = scrub.scrub_text(text)
    for secret in (token, key, "HunterPass2", "s3cret", "QueryPass", "EnvPass"):
        assert secret not in scrubbed, secret
    assert "WARROOM_TOKEN=[token]" in scrubbed
    assert "?key=[key]&x=1" in scrubbed
    assert "postgresql://backup:***@db/prod" in scrubbed
    assert "redis://:***@cache:6379/0" in scrubbed
    assert "password=***&b=2" in scrubbed and "PGPASSWORD=*** pg_restore" in scrubbed
    # What is no secret stays as it was.
    assert f"md5 {CHECKSUM} ok; mail ops@example.com; see https://grafana.example/d/abc" in scrubbed
    plain = "disk 91% on db-2: /var/lib/postgresql"
    assert scrub.scrub_text(plain) == plain


def test_a_failed_runs_output_keeps_no_token_key_or_password(
    api: TestClient,
    context: AppContext,
    admin: dict[str, str],
    viewer: dict[str, str],
    tokens: dict[str, str],
) -> None:
    hb_key = make_key(context, "heartbeat", "backups")
    other_key = make_key(context, "generic", "scripts")
    output = (
        f"+ curl -fsS https://warroom.example/api/v1/heartbeats/nightly-backup/0?key={hb_key}\n"
        f"+ export WARROOM_TOKEN={tokens['admin']}\n"
        "+ pg_dump postgresql://backup:HunterPass2@db/prod\n"
        f"+ echo {other_key.upper()} > /etc/scripts.key\n"  # a bare key, not given as one: active, so out
        f"+ md5sum: {CHECKSUM}\n"
        "pg_dump: error: connection refused\n"
    ).encode()
    answer = api.post(f"/api/v1/heartbeats/nightly-backup/2?key={hb_key}", content=output)
    assert answer.status_code == 200, answer.text
    alerts = api.get("/api/v1/alerts", headers=viewer).json()["items"]
    (failed,) = [a for a in alerts if a["alert_type"] == "HeartbeatFailed"]
    shown = api.get(f"/api/v1/alerts/{failed['id']}", headers=viewer)
    assert shown.status_code == 200
    text = shown.text
    for secret in (hb_key, tokens["admin"], "HunterPass2", other_key, other_key.upper()):
        assert secret not in text, secret
    out = shown.json()["annotations"]["output"]
    assert f"?key={scrub.REDACTED_KEY}" in out
    assert "WARROOM_TOKEN=[token]" in out
    assert "postgresql://backup:***@db/prod" in out
    assert f"echo {scrub.REDACTED_KEY} >" in out
    assert CHECKSUM in out and "pg_dump: error: connection refused" in out


def test_a_mails_body_and_subject_keep_no_token_or_password(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str], tokens: dict[str, str], mail_port: int
) -> None:
    key = create_email_key(api, admin)
    mail = message(
        f"PROBLEM backup failed with WARROOM_TOKEN={tokens['admin']}",
        f"WARROOM_TOKEN={tokens['admin']}\npg_dump postgresql://backup:HunterPass2@db/prod failed\n",
    )
    code, answer = send(mail_port, [f"{key}@alerts.warroom.example"], mail)
    assert code == 250, answer
    (alert,) = api.get("/api/v1/alerts", headers=viewer).json()["items"]
    shown = api.get(f"/api/v1/alerts/{alert['id']}", headers=viewer)
    assert tokens["admin"] not in shown.text and "HunterPass2" not in shown.text
    assert "WARROOM_TOKEN=[token]" in shown.json()["summary"]
    assert "postgresql://backup:***@db/prod" in shown.json()["annotations"]["description"]


def test_a_plain_alerts_text_and_a_webhooks_payload_keep_no_secrets(
    api: TestClient, context: AppContext, viewer: dict[str, str], tokens: dict[str, str]
) -> None:
    key = make_key(context, "generic", "scripts")
    body = {
        "summary": f"deploy failed: token {tokens['admin']} refused",
        "severity": "error",
        "dedup_key": "deploy",
        "annotations": {"description": "cannot reach https://deploy:Hunter2Deploy@ci.example/hook"},
        "details": {"env": f"WARROOM_TOKEN={tokens['admin']}"},
    }
    answer = api.post(f"/api/v1/alerts?key={key}", json=body)
    assert answer.status_code == 202, answer.text
    alert_id = answer.json()["alerts"][0]["id"]
    shown = api.get(f"/api/v1/alerts/{alert_id}", headers=viewer)
    assert tokens["admin"] not in shown.text and "Hunter2Deploy" not in shown.text
    detail = shown.json()
    assert detail["summary"] == "deploy failed: token [token] refused"
    assert detail["annotations"]["description"] == "cannot reach https://deploy:***@ci.example/hook"
    assert detail["annotations"]["details"] == {"env": "WARROOM_TOKEN=[token]"}  # nested text too
    # The raw payload is kept whole as evidence, and shown scrubbed.
    assert "WARROOM_TOKEN=[token]" in str(detail["raw"])
