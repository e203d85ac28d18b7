"""``/healthz`` answers 503 when Warroom's tables are gone but the version table is left (it said 200 "ok"
while every API route answered 503 wrong_schema), and a request's path in the server log shows an acknowledge
link without its token (the wrong_schema line logged ``GET /api/v1/ack/5.emVk.…`` whole)."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from tests.test_contract_schema_missing import assert_schema_missing, tables_gone
from warroom.app import create_app
from warroom.context import AppContext
from warroom.oncall.links import make_ack_token


def test_healthz_is_503_when_the_tables_are_gone_but_the_version_is_not(
    context: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    token = make_ack_token(context.settings.resolved_secret_key(), incident_id=5, person="zed")
    with TestClient(create_app(context=context), raise_server_exceptions=False) as api:
        assert api.get("/healthz").status_code == 200
        with tables_gone(context, "incidents"):
            health = api.get("/healthz")
            assert health.status_code == 503, health.text
            error = health.json()["error"]
            assert error["code"] == "wrong_schema" and "incidents" in error["message"], error
            assert api.head("/healthz").status_code == 503
            caplog.clear()
            caplog.set_level(logging.WARNING, logger="warroom")
            assert_schema_missing(api.get(f"/api/v1/ack/{token}"))
            assert_schema_missing(api.post(f"/api/v1/ack/{token}"))
            said = [r.getMessage() for r in caplog.records if r.name.startswith("warroom")]
            assert said and all(token not in line and "/api/v1/ack/[hidden]" in line for line in said), said
        assert api.get("/healthz").status_code == 200
