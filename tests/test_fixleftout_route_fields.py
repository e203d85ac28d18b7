"""No pydantic UnsupportedFieldAttributeWarning escapes while an app answers its first requests and another
thread of the process uses ``warnings.catch_warnings`` (two apps in one process, as in the report-limit
test's two servers; a library in the worker's thread). The aliases it named ('service', 'body', 'ref',
'identifierType') are FastAPI's own, one per route parameter: FastAPI built an included router's routes at
their first request and silenced the warning with ``warnings.catch_warnings``, which is process-wide, so the
other thread's leaving its own block undid the silence. ``create_app`` now builds them, in its thread."""

from __future__ import annotations

import threading
import time
import warnings

import pytest
from fastapi.testclient import TestClient

from tests.conftest import bearer
from warroom.app import create_app
from warroom.context import AppContext

# The first request of each router built its routes (the race's window).
OTHER_ROUTERS = ("/api/v1/jobs", "/api/v1/notifications", "/api/v1/oncall", "/api/v1/severities")


def _other_thread_catching_warnings(stop: threading.Event) -> None:
    """What another thread of the process may do: each block, on leaving, puts back the filters it found."""
    while not stop.is_set():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            time.sleep(0.0005)


@pytest.mark.filterwarnings("error::pydantic.warnings.UnsupportedFieldAttributeWarning")
def test_first_requests_raise_no_warning_and_take_aliased_parameters(
    context: AppContext, tokens: dict[str, str]
) -> None:
    headers = bearer(tokens["admin"])
    with TestClient(create_app(context=context)) as setup:
        for title, service in (("Checkout down", "payments"), ("Login slow", "auth")):
            created = setup.post(
                "/api/v1/incidents", json={"title": title, "services": [service]}, headers=headers
            )
            assert created.status_code == 201, created.text
    for _ in range(3):
        app = create_app(context=context)
        stop = threading.Event()
        other = threading.Thread(target=_other_thread_catching_warnings, args=(stop,))
        other.start()
        try:
            with TestClient(app) as client:
                # "service" and "status" are query aliases of parameters named otherwise.
                page = client.get(
                    "/api/v1/incidents",
                    params={"service": "payments", "status": "investigating"},
                    headers=headers,
                )
                assert page.status_code == 200, page.text
                assert [incident["title"] for incident in page.json()["items"]] == ["Checkout down"]
                alerts = client.get("/api/v1/alerts", params={"service": "payments"}, headers=headers)
                assert alerts.status_code == 200, alerts.text
                assert alerts.json()["items"] == []
                for path in OTHER_ROUTERS:
                    assert client.get(path, headers=headers).status_code == 200, path
        finally:
            stop.set()
            other.join()
