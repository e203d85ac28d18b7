"""Secrets the scrubber (``alerts.scrub``) missed: a quoted value (``PGPASSWORD="…"``), a password holding
``@`` in a URL, ``password: …`` and JSON's ``"password": "…"``, and the common names of secrets in the
environment (``MYSQL_PWD``, ``*_SECRET``, ``*_TOKEN``, ``*_API_KEY``) and in query strings."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.alerts.test_intake import alerts
from warroom.alerts import scrub
from warroom.context import AppContext


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ('PGPASSWORD="abc123" psql -h db', 'PGPASSWORD="***" psql -h db'),
        ("PGPASSWORD='abc123' psql -h db", "PGPASSWORD='***' psql -h db"),
        ("pg_dump postgresql://u:p@ss@h/db", "pg_dump postgresql://u:***@h/db"),
        ("login failed, password: hunter4", "login failed, password: ***"),
        ('{"user":"app","password":"abc123"}', '{"user":"app","password":"***"}'),
        ('{"password": "pa\\"ss", "x": 1}', '{"password": "***", "x": 1}'),
        ("MYSQL_PWD=abc123 mysql -u root", "MYSQL_PWD=*** mysql -u root"),
        ("PASSWORD=abc123", "PASSWORD=***"),
        ("secret=s1 api_key=k2 token=t3", "secret=*** api_key=*** token=***"),
        (
            "DJANGO_SECRET=s1 GITHUB_TOKEN=ghp_x X_API_KEY=k",
            "DJANGO_SECRET=*** GITHUB_TOKEN=*** X_API_KEY=***",
        ),
        ("AWS_SECRET_ACCESS_KEY=abc", "AWS_SECRET_ACCESS_KEY=***"),
        ("https://svc/cb?access_token=abc&x=1", "https://svc/cb?access_token=***&x=1"),
        ("Server=db;Uid=sa;Pwd=abc123;", "Server=db;Uid=sa;Pwd=***;"),
        ("client_secret: 's3'", "client_secret: '***'"),
    ],
)
def test_each_form_of_a_secret_is_taken_out(text: str, scrubbed: str) -> None:
    assert scrub.might_hold_secrets(text)
    assert scrub.scrub_text(text) == scrubbed


def test_what_is_no_secret_or_already_taken_out_is_kept() -> None:
    for text in (
        "disk 91% on db-2 at 12:00, they said",
        "key=[key] token=[token] password=***",
        "api_key=[key]",
        "tokens left: 5",
    ):
        assert scrub.scrub_text(text) == text, text
    key = "0123456789abcdef0123456789abcdef"
    assert scrub.scrub_text(f"api_key={key}") == "api_key=[key]"


def test_a_plain_alerts_summary_keeps_none_of_them(api: TestClient, context: AppContext) -> None:
    key = make_key(context, "generic", "scripts")
    summary = (
        'backup failed: PGPASSWORD="abc123" psql postgresql://u:p@ss@h/db; password: hunter4; '
        'MYSQL_PWD=mypw1 {"password":"jsonpw"} secret=sec1 api_key=apik1 token=tok1'
    )
    answer = api.post(f"/api/v1/alerts?key={key}", json={"summary": summary, "dedup_key": "backup"})
    assert answer.status_code == 202, answer.text
    stored = alerts(context)[0].summary
    for secret in ("abc123", "p@ss", "ss@h", "hunter4", "mypw1", "jsonpw", "sec1", "apik1", "tok1"):
        assert secret not in stored, (secret, stored)
    assert 'PGPASSWORD="***"' in stored and "postgresql://u:***@h/db" in stored
