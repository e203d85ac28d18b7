"""WARROOM_FORWARDED_ALLOW_IPS (and ``serve --forwarded-allow-ips``) takes addresses and networks: anything
else stops ``warroom serve`` with one line, not a server whose clients behind the proxy share one address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError
from uvicorn.middleware.proxy_headers import _TrustedHosts

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import free_port
from warroom.cli.main import uvicorn_options
from warroom.settings import Settings

BAD = [  # the first four as QA found them: each started the server
    ("127.0.0.1;::1", "'127.0.0.1;::1' is not an IP address or a network"),
    ("10.0.0.0/33", "'10.0.0.0/33' is not an IP address or a network"),
    ("nginx-proxy", "'nginx-proxy' is not an IP address or a network"),
    ("127.0.0.1 ::1", "'127.0.0.1 ::1' is not an IP address or a network"),
    ("127.0.0.1, 10.0.0.1/8", "10.0.0.1/8 has host bits set; the network is 10.0.0.0/8"),
    ("127.0.0.1,*", "'*' (trust every address) stands alone"),
    ("127.0.0.1,,::1", "an empty entry between commas"),
    ("[::1]", "'[::1]' is not an IP address or a network"),
]


def serve(tmp_path: Path, *args: str, **env: str) -> tuple[int, str]:
    """``warroom serve`` in a process of its own: its exit status and what it wrote on stderr. One that
    starts (prints where it serves) is stopped, and the test fails."""
    environment = {
        **os.environ,
        "WARROOM_DATA_DIR": str(tmp_path),
        "WARROOM_CONFIG": str(EXAMPLE_CONFIG),
        "WARROOM_PORT": str(free_port()),
        "COLUMNS": "300",  # the error on one line, as a terminal this wide shows it
        **env,
    }
    environment.pop("WARROOM_DATABASE_URL", None)
    with subprocess.Popen(
        [sys.executable, "-m", "warroom", "serve", "--no-worker", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for line in process.stdout:
            if line.startswith("Warroom "):
                process.kill()
                pytest.fail(f"warroom serve started with a malformed forwarded-allow-ips: {line}")
        return process.wait(timeout=120), process.stderr.read()


@pytest.mark.parametrize(("value", "said"), BAD[:4])
def test_a_malformed_setting_stops_serve_with_one_line_naming_it(
    tmp_path: Path, value: str, said: str
) -> None:
    status, errors = serve(tmp_path, WARROOM_FORWARDED_ALLOW_IPS=value)
    assert status == 1
    [line] = errors.strip().splitlines()
    assert line.startswith("error: WARROOM_FORWARDED_ALLOW_IPS: ")
    assert said in line


def test_the_flag_is_checked_as_the_variable_is(tmp_path: Path) -> None:
    status, errors = serve(tmp_path, "--forwarded-allow-ips", "nginx-proxy")
    assert status == 1
    [line] = errors.strip().splitlines()
    assert "'nginx-proxy' is not an IP address or a network" in line


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("127.0.0.1,::1", "127.0.0.1,::1"),
        (" 127.0.0.1 , ::1 ", "127.0.0.1,::1"),
        ("10.0.0.0/8, fd00::/8,192.168.1.7", "10.0.0.0/8,fd00::/8,192.168.1.7"),
        (" * ", "*"),
        ("fe80::1%eth0", "fe80::1%eth0"),
        ("   ", None),
    ],
)
def test_addresses_and_networks_are_taken_as_uvicorn_reads_them(value: str, read: str | None) -> None:
    settings = Settings(forwarded_allow_ips=value)
    assert settings.forwarded_allow_ips == read
    options = uvicorn_options(settings)
    assert options["proxy_headers"] is (read is not None)
    if read is None:
        return  # no proxy named: uvicorn believes no forwarding header
    trusted = _TrustedHosts(options["forwarded_allow_ips"])
    # Every entry is an address or a network to uvicorn: none is a literal no client's address equals.
    assert not trusted.trusted_literals
    if read == "*":
        assert trusted.always_trust


@pytest.mark.parametrize(("value", "said"), BAD)
def test_settings_refuse_what_serve_refuses(value: str, said: str) -> None:
    with pytest.raises(ValidationError, match="forwarded_allow_ips") as raised:
        Settings(forwarded_allow_ips=value)
    assert said in str(raised.value)
