"""Behind a reverse proxy that serves Warroom under a path (``WARROOM_URL=http://proxy/warroom``), an id
that names nothing is said as the server says it, without the hint that WARROOM_URL takes no path; the hint
stays for the router's own "Not Found", which a path in WARROOM_URL that reaches no route gets."""

from __future__ import annotations

import httpx
import pytest
from click.testing import Result
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.client import Client

PREFIX = "/warroom"
URL = f"http://proxy.test{PREFIX}"


def _through(api: TestClient, token: str, monkeypatch: pytest.MonkeyPatch, *, strip: bool) -> CliRunner:
    """The CLI answered by the app, through a proxy that takes ``PREFIX`` off the path (``strip``) or
    straight to the server, which has no route under ``PREFIX``."""

    def answer(request: httpx.Request) -> httpx.Response:
        path = request.url.raw_path.decode()
        if strip:
            assert path.startswith(PREFIX + "/"), path
            path = path[len(PREFIX) :]
        got = api.request(request.method, path, headers=request.headers, content=request.content)
        return httpx.Response(got.status_code, headers=got.headers, content=got.content)

    monkeypatch.setattr(
        "warroom.cli.incidents.Client", lambda: Client(URL, token, transport=httpx.MockTransport(answer))
    )
    return CliRunner(env={"WARROOM_URL": URL, "COLUMNS": "300"})


def _said(result: Result) -> str:
    assert result.exit_code == 1, result.output
    return " ".join(result.output.split())


def test_an_incident_that_is_not_there_behind_a_prefix_proxy_gets_no_url_hint(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _through(api, tokens["admin"], monkeypatch, strip=True)
    said = _said(runner.invoke(app, ["incident", "show", "INC-999"]))
    assert "no incident INC-999 (404 not_found)" in said, said
    assert "without a path" not in said and "WARROOM_URL" not in said, said


def test_a_path_no_route_has_still_gets_the_url_hint(
    api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _through(api, tokens["admin"], monkeypatch, strip=False)
    said = _said(runner.invoke(app, ["incident", "show", "INC-999"]))
    assert "Not Found (404 not_found); WARROOM_URL is the server's address, without a path" in said, said
    assert "http://proxy.test" in said, said
