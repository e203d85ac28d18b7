"""The public form's ``contact`` ("email or phone to reach the reporter") was taken as any text:
``not-an-email``, ``a@b``, markup. It must be an email address or a phone number; anything else is a 422
naming the field."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from warroom.alerts.models import Alert
from warroom.context import AppContext

REPORT = {"description": "checkout fails", "affected_feature": "checkout"}


@pytest.mark.parametrize(
    "contact",
    [
        "not-an-email",
        "a@b",
        "<img src=x onerror=alert(1)>",
        "ann@",
        "Ann <ann@example.com>",
        "12345",  # too few digits for a phone number
        "+49 30 abc 1234",
        "call me maybe",
    ],
)
def test_a_contact_that_reaches_nobody_is_refused(api: TestClient, context: AppContext, contact: str) -> None:
    refused = api.post("/api/v1/reports", json={**REPORT, "contact": contact})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["details"][0]["field"] == "contact"
    assert "an email address" in error["message"] and "a phone number" in error["message"]
    with context.db.read() as session:
        assert session.scalars(select(Alert)).first() is None


@pytest.mark.parametrize(
    "contact",
    ["ann@example.com", "ann.lee+shop@mail.acme.example", "+49 (30) 1234-5678", "030 123.456", "555123"],
)
def test_an_email_address_or_a_phone_number_is_taken(
    api: TestClient, context: AppContext, contact: str
) -> None:
    assert api.post("/api/v1/reports", json={**REPORT, "contact": contact}).status_code == 202
    with context.db.read() as session:
        assert session.scalars(select(Alert)).one().annotations["contact"] == contact
