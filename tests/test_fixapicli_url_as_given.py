"""A WARROOM_URL the client refuses is quoted as it was given: ``http://`` was quoted as ``'http:'`` (its
slashes cut before the check), which is not what the user wrote. A password in it stays masked."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from warroom.cli.main import app


def _refusal(url: str) -> str:
    env = {"WARROOM_URL": url, "WARROOM_TOKEN": "wr_secret", "WARROOM_TIMEOUT": "1", "COLUMNS": "300"}
    result = CliRunner(env=env).invoke(app, ["incident", "list"])
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://", "names no host"),
        ("https:///", "names no host"),
        ("http://127.0.0.1:99999/", "port '99999'"),
        ("ftp://files.example.com/", "http:// or https://"),
    ],
)
def test_a_refused_url_is_quoted_as_given(url: str, problem: str) -> None:
    said = _refusal(url)
    assert f"WARROOM_URL {url!r} is not the server's address: " in said and problem in said, said


def test_a_password_in_a_refused_url_is_still_masked() -> None:
    said = _refusal("http://example.com:99999/?password=hunter2")
    assert "WARROOM_URL 'http://example.com:99999/?password=***'" in said, said
    assert "hunter2" not in said and "wr_secret" not in said
    said = _refusal("http://admin:hunter2@warroom.example.com/")
    assert "'http://admin:***@warroom.example.com/'" in said and "hunter2" not in said, said
