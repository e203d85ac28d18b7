"""``serve``'s first line names the address it listens on, and the public URL beside it when that differs: a
server on :20011 whose WARROOM_PUBLIC_URL is :20010 printed only the public URL, as if it listened there."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import free_port
from warroom.cli.main import app


def banner(database_url: str, *args: str) -> str:
    served = CliRunner().invoke(
        app,
        ["serve", "--config", str(EXAMPLE_CONFIG), "--database-url", database_url, "--no-worker", *args],
        env={"COLUMNS": "300"},
    )
    assert served.exit_code == 0, served.output
    return next(line for line in served.output.splitlines() if line.startswith("Warroom "))


def test_the_banner_names_the_listen_address_and_the_public_url_apart(
    monkeypatch: pytest.MonkeyPatch, database_url: str, uvicorn_not_run: list[Any]
) -> None:
    monkeypatch.setenv("WARROOM_PUBLIC_URL", "http://127.0.0.1:20010")
    port = free_port()
    line = banner(database_url, "--host", "127.0.0.1", "--port", str(port))
    assert f" on http://127.0.0.1:{port} (public URL: http://127.0.0.1:20010; org: " in line, line


def test_without_a_public_url_of_its_own_the_banner_says_the_address_once(
    monkeypatch: pytest.MonkeyPatch, database_url: str, uvicorn_not_run: list[Any]
) -> None:
    monkeypatch.delenv("WARROOM_PUBLIC_URL", raising=False)
    port = free_port()  # free on 127.0.0.1, and in practice on ::1 too
    line = banner(database_url, "--host", "::1", "--port", str(port))
    assert f" on http://[::1]:{port} (org: " in line and "public URL" not in line, line
