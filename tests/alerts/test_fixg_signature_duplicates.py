"""A signature (or its timestamp) sent twice with different values is ambiguous: refused with 401, whichever
copy is the right one, as conflicting keys are."""

from __future__ import annotations

from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from tests.alerts.test_grafana_signing import (
    SIGNATURE,
    TIMESTAMP,
    count_alerts,
    delivery,
    frozen,  # noqa: F401 (a fixture)
    grafana_sign,
    signing_integration,
)
from warroom.context import AppContext

LEGACY = "X-Grafana-Alert-Signature"


def _post(api: TestClient, key: str, body: bytes, headers: list[tuple[str, str]]) -> int:
    answer = api.post(
        f"/api/v1/alerts/grafana?key={key}",
        content=body,
        headers=[("Content-Type", "application/json"), *headers],
    )
    if answer.status_code == 401:
        assert "more than once" in answer.text, answer.text
    return answer.status_code


@pytest.mark.parametrize("order", ["zeros first", "valid first"])
def test_a_repeated_signature_header_is_refused(api: TestClient, context: AppContext, order: str) -> None:
    key, secret = signing_integration(context)
    body = delivery()
    copies = [(SIGNATURE, "0" * 64), (SIGNATURE, grafana_sign(secret, body))]
    if order == "valid first":
        copies.reverse()
    assert _post(api, key, body, copies) == 401
    assert count_alerts(context) == 0
    # The same right signature twice is not ambiguous; alone it is accepted.
    valid = grafana_sign(secret, body)
    assert _post(api, key, body, [(SIGNATURE, valid), (SIGNATURE, valid.upper())]) == 202


def test_a_valid_signature_beside_a_wrong_legacy_one_is_refused(api: TestClient, context: AppContext) -> None:
    key, secret = signing_integration(context)
    body = delivery()
    valid = grafana_sign(secret, body)
    assert _post(api, key, body, [(SIGNATURE, valid), (LEGACY, "0" * 64)]) == 401
    assert _post(api, key, body, [(LEGACY, valid), (SIGNATURE, "0" * 64)]) == 401
    assert count_alerts(context) == 0
    assert _post(api, key, body, [(LEGACY, valid)]) == 202  # the older name alone still works


def test_a_repeated_timestamp_is_refused(api: TestClient, context: AppContext, frozen: datetime) -> None:  # noqa: F811
    key, secret = signing_integration(context)
    body = delivery()
    sent = str(int(frozen.timestamp()))
    headers = [(SIGNATURE, grafana_sign(secret, body, sent)), (TIMESTAMP, sent), (TIMESTAMP, "1")]
    assert _post(api, key, body, headers) == 401
    assert count_alerts(context) == 0
