"""The dry run (``config test-alert --server``, ``POST /api/v1/alerts/preview``) predicts what intake does
with the delivery last applied to an open alert: marked seen, no occurrence counted (``unchanged``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from tests.alerts.test_rule_preview import payments_alert
from warroom.alerts.models import Alert
from warroom.alerts.schemas import RoutingPreview
from warroom.cli import main as cli_main
from warroom.clock import clock
from warroom.context import AppContext

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def test_the_same_delivery_again_is_predicted_unchanged(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    viewer: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def preview(body: Any) -> dict[str, Any]:
        response = api.post("/api/v1/alerts/preview", json=body, headers=viewer)
        assert response.status_code == 200, response.text
        [shown] = response.json()
        return shown  # type: ignore[no-any-return]

    def fire(body: Any) -> str:
        fired = api.post(f"/api/v1/alerts?key={generic_key}", json=body)
        assert fired.status_code == 202, fired.text
        outcome: str = fired.json()["alerts"][0]["outcome"]
        return outcome

    def occurrences() -> int:
        with context.db.read() as session:
            return session.scalars(select(Alert.occurrences)).one()

    clock.set(T0)
    body = payments_alert("charges-1")
    assert fire(body) == "created"
    clock.advance(timedelta(minutes=5))
    shown = preview(body)
    assert shown["open_alert"] == "ALR-1" and shown["open_alert_unchanged"] is True
    cli_main._print_preview(RoutingPreview.model_validate(shown))
    said = " ".join(capsys.readouterr().out.split())
    assert "one more occurrence" not in said and "without counting an occurrence" in said, said
    assert fire(body) == "unchanged" and occurrences() == 1  # as predicted

    changed = payments_alert("charges-1", "charges failing for EU cards")
    shown = preview(changed)
    assert shown["open_alert"] == "ALR-1" and shown["open_alert_unchanged"] is False
    cli_main._print_preview(RoutingPreview.model_validate(shown))
    assert "one more occurrence" in " ".join(capsys.readouterr().out.split())
    assert fire(changed) == "updated" and occurrences() == 2
