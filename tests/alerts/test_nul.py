from __future__ import annotations

from fastapi.testclient import TestClient


def test_nul_in_an_alert_is_refused(api: TestClient, generic_key: str) -> None:
    response = api.post(
        f"/api/v1/alerts?key={generic_key}",
        json={"summary": "disk \x00 full", "source": "x", "severity": "critical"},
    )
    assert response.status_code in (400, 422), response.text
