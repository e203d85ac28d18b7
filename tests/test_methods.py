"""Methods: a 405 names every method its path takes, and HEAD is served wherever GET is."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/alerts", ["GET", "HEAD", "POST"]),  # a list and the plain-JSON intake
        ("DELETE", "/api/v1/incidents", ["GET", "HEAD", "POST"]),
        ("PUT", "/api/v1/incidents/INC-1", ["GET", "HEAD", "PATCH"]),
        ("OPTIONS", "/api/v1/incidents", ["GET", "HEAD", "POST"]),
        ("GET", "/v2/enqueue", ["POST"]),
    ],
)
def test_a_405_names_every_method_of_the_path(
    api: TestClient, responder: dict[str, str], method: str, path: str, allowed: list[str]
) -> None:
    refused = api.request(method, path, headers=responder)
    assert refused.status_code == 405, refused.text
    assert refused.headers["allow"] == ", ".join(allowed)
    error = refused.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["message"] == f"{method} is not allowed on {path}; it takes {', '.join(allowed)}"
    assert error["details"] == [{"message": error["message"], "allowed": allowed}]


def test_head_is_get_without_the_body(api: TestClient, viewer: dict[str, str]) -> None:
    for path in ["/api/v1/incidents", "/healthz", "/metrics", "/api/v1/severities"]:
        got = api.get(path, headers=viewer)
        head = api.head(path, headers=viewer)
        assert head.status_code == got.status_code == 200, (path, head.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]
    assert api.head("/api/v1/incidents").status_code == 401  # the same checks as GET
    assert api.head("/api/v1/nowhere", headers=viewer).status_code == 404
