"""The client's settings that would send the token to the wrong place, or get a misleading answer, are
refused before anything is sent, in one line naming the setting: a WARROOM_URL whose port is above 65535
(httpx took it modulo 65536: 87036 reached port 21500, token and all), not a number, a URL with no host or
of another scheme; a WARROOM_TOKEN with the quotes of an env file kept around it, or one quote at one end."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import Result
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.client import Client


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port that takes connections (they wait in its backlog), to see whether anything reached it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        sock.settimeout(0.5)
        yield sock


def _reached(sock: socket.socket) -> bool:
    try:
        connection, _ = sock.accept()
    except TimeoutError:
        return False
    connection.close()
    return True


def _incident_list(url: str, token: str = "wr_secret") -> Result:
    env = {"WARROOM_URL": url, "WARROOM_TOKEN": token, "WARROOM_TIMEOUT": "1", "COLUMNS": "300"}
    return CliRunner(env=env).invoke(app, ["incident", "list"])


def _one_line_error(result: Result) -> str:
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def test_a_port_above_65535_is_refused_and_reaches_no_port(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    said = _one_line_error(_incident_list(f"http://127.0.0.1:{port + 65536}"))
    assert "WARROOM_URL" in said and str(port + 65536) in said and "65535" in said, said
    assert not _reached(listener)  # neither the token nor anything else went to port - 65536


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://127.0.0.1:99999", "port '99999'"),
        ("https://warroom.example.com:65536/", "port '65536'"),
        ("http://127.0.0.1:0", "port '0'"),
        ("http://127.0.0.1:80a", "port '80a'"),
        ("http://[::1]:70000", "port '70000'"),
        ("http://:8080", "no host"),
        ("http:///api", "no host"),
        ("ftp://127.0.0.1:21", "http:// or https://"),
        ("127.0.0.1:8080", "http:// or https://"),
        ("http://[::1", "not a URL"),
    ],
)
def test_a_url_that_is_not_a_servers_address_is_refused_in_one_line(url: str, problem: str) -> None:
    said = _one_line_error(_incident_list(url))
    assert f"WARROOM_URL {url!r}" in said and problem in said, said
    assert "wr_secret" not in said


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080", "https://warroom.example.com", "http://[::1]:65535/", "HTTP://h:1"]
)
def test_a_servers_address_is_taken(url: str) -> None:
    Client(url, "wr_token").close()


@pytest.mark.parametrize("token", ['"wr_abc"', "'wr_abc'", ' "wr_abc"\n'])
def test_a_token_with_quotes_around_it_is_refused_saying_so(listener: socket.socket, token: str) -> None:
    port = listener.getsockname()[1]
    said = _one_line_error(_incident_list(f"http://127.0.0.1:{port}", token))
    assert "WARROOM_TOKEN has quote characters around it" in said, said
    assert "wr_abc" not in said and "revoked" not in said
    assert not _reached(listener)


@pytest.mark.parametrize(
    ("token", "where"),
    [
        ('"wr_abc', "start"),
        ("'wr_abc", "start"),
        ('wr_abc"', "end"),
        ("wr_abc'\n", "end"),
    ],
)
def test_a_token_with_a_quote_at_one_end_is_refused_saying_so(
    listener: socket.socket, token: str, where: str
) -> None:
    """A paste that took one quote of a pair: as plainly said as the pair, nothing sent."""
    port = listener.getsockname()[1]
    said = _one_line_error(_incident_list(f"http://127.0.0.1:{port}", token))
    assert f"WARROOM_TOKEN has a quote character at its {where}" in said, said
    assert "wr_abc" not in said and "revoked" not in said
    assert not _reached(listener)


def test_a_quote_pair_that_does_not_match_is_said_as_quotes_around_it(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    said = _one_line_error(_incident_list(f"http://127.0.0.1:{port}", "\"wr_abc'"))
    assert "WARROOM_TOKEN has quote characters around it" in said, said


@pytest.mark.parametrize("token", ["wr_" + "-" * 43, "wr_" + "_" * 43, "wr_Az09-_xY", "-wr_a-", "_wr_a_"])
def test_tokens_of_the_token_alphabet_are_taken(token: str) -> None:
    """A token is wr_ and URL-safe base64 (letters, digits, - and _), which may start or end with - or _."""
    client = Client("http://127.0.0.1:1", token)
    assert client.token == token
    client.close()
