"""The CLI where its output or its command line is not UTF-8: a Latin-1 or ASCII output (a locale, or
PYTHONIOENCODING into a file) writes the CLI's own characters ("—", "…", "→") as ASCII stand-ins and a data
character it cannot hold as "?", never a traceback (and never exit 1 after a change was made)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import ServerProcess, create_token

# Starting a server takes long on a busy machine: a wait longer than ``serve_for_cli``'s.
START = 120.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    directory = tmp_path_factory.mktemp("encoding")
    database_url = f"sqlite:///{directory / 'warroom.db'}"
    env = {"WARROOM_DATA_DIR": str(directory), "WARROOM_DATABASE_URL": database_url}
    token = create_token("latin", "admin", env=env)
    process = ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=directory, extra_env=env
    )
    process.start(timeout=START)
    try:
        yield {**env, "WARROOM_URL": process.url, "WARROOM_TOKEN": token}
    finally:
        process.stop()


def warroom(
    env: dict[str, str], *args: str, encoding: str = "utf-8", **more: str
) -> subprocess.CompletedProcess[bytes]:
    """``warroom ARGS`` with its output to a pipe in ``encoding`` (PYTHONIOENCODING), its command line
    read as UTF-8 (an argument with a lone surrogate is the byte it escapes, as Python reads one)."""
    merged = {**os.environ, **env, "PYTHONIOENCODING": encoding, "PYTHONUTF8": "1", "COLUMNS": "200", **more}
    return subprocess.run(
        [sys.executable, "-m", "warroom", *args],
        env=merged,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )


def incident_count(env: dict[str, str]) -> int:
    listed = warroom(env, "incident", "list", "--json", "--limit", "200")
    assert listed.returncode == 0, listed.stderr
    return len(json.loads(listed.stdout)["items"])


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_list_prints_in_an_output_encoding_without_the_cli_characters(
    server: dict[str, str], encoding: str
) -> None:
    made = warroom(server, "incident", "create", "Plain disk full", "--severity", "P3", "--service", "api")
    assert made.returncode == 0, made.stderr

    listed = warroom(server, "incident", "list", encoding=encoding)

    assert listed.returncode == 0, listed.stderr
    assert b"Traceback" not in listed.stderr and listed.stderr == b""
    text = listed.stdout.decode(encoding)
    assert "Plain disk full" in text
    assert "\u2014" not in text


def test_data_characters_the_encoding_cannot_hold_are_question_marks(server: dict[str, str]) -> None:
    made = warroom(server, "incident", "create", "Zürich \u2713 down", "--severity", "P3", "--service", "api")
    assert made.returncode == 0, made.stderr

    ref = made.stdout.decode().split()[0]

    latin = warroom(server, "incident", "show", ref, encoding="latin-1")
    ascii_only = warroom(server, "incident", "show", ref, encoding="ascii")

    assert latin.returncode == 0 and ascii_only.returncode == 0, latin.stderr + ascii_only.stderr
    assert "Zürich ? down" in latin.stdout.decode("latin-1")
    assert "Z?rich ? down" in ascii_only.stdout.decode("ascii")
    assert "| commander    | - " in ascii_only.stdout.decode("ascii")  # "—" in UTF-8: none


@pytest.mark.parametrize("encoding", ["latin-1", "ascii", "cp1252"])
def test_a_change_made_exits_0_in_any_output_encoding(server: dict[str, str], encoding: str) -> None:
    before = incident_count(server)

    made = warroom(
        server, "incident", "create", f"Once only {encoding}", "--severity", "P3", "--service", "api",
        encoding=encoding,
    )  # fmt: skip

    assert made.returncode == 0, made.stderr
    assert made.stderr == b""
    assert incident_count(server) == before + 1
    ref = made.stdout.decode(encoding).split()[0]
    updated = warroom(server, "incident", "update", ref, "--status", "identified", encoding=encoding)
    assert updated.returncode == 0, updated.stderr
    timeline = warroom(server, "incident", "timeline", ref, encoding=encoding)
    assert timeline.returncode == 0, timeline.stderr
    assert "investigating -> identified" in timeline.stdout.decode(encoding)


def test_serve_starts_with_an_org_the_output_encoding_cannot_name(tmp_path: Path) -> None:
    data_dir = tmp_path / "Zürich"
    data_dir.mkdir()
    config = data_dir / "org.yaml"
    config.write_text(
        EXAMPLE_CONFIG.read_text(encoding="utf-8").replace(
            "organization: Acme Cloud", "organization: Zürich Ops"
        ),
        encoding="utf-8",
    )
    database_url = f"sqlite:///{data_dir / 'warroom.db'}"
    env = {"WARROOM_DATA_DIR": str(data_dir), "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "1"}
    create_token("ops", "admin", database_url=database_url, env=env)

    server = ServerProcess(database_url=database_url, config=config, data_dir=data_dir, extra_env=env)
    server.start(timeout=START)
    try:
        assert "(org: Z?rich Ops; database: " in server.log()
    finally:
        server.stop()


# A command line that is not UTF-8: Python reads each such byte as a lone surrogate ("\udce9" for 0xe9),
# which httpx could not send (a traceback, exit 1). Refused before anything is done: exit 2, one line.
@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["incident", "create", "Caf\udce9 down", "--severity", "P3", "--service", "api"], "TITLE"),
        (["incident", "create", "--severity", "P3", "--service", "api", "Caf\udce9 down"], "TITLE"),
        (["incident", "update", "INC-1", "--summary=Caf\udce9 down"], "--summary"),
        (["alerts", "note", "305", "-m", "Caf\udce9 down"], "--message"),
        (["alerts", "list", "--search", "Caf\udce9 down"], "--search"),
    ],
)
def test_an_argument_that_is_not_utf8_is_a_usage_error_naming_it(
    server: dict[str, str], args: list[str], named: str
) -> None:
    before = incident_count(server)

    refused = warroom(server, *args)

    assert refused.returncode == 2, refused.stderr
    said = refused.stderr.decode()
    not_utf8 = "byte 0xe9 at character 4 is not UTF-8"
    assert said == f"error: {named}: {not_utf8}; set your terminal to UTF-8 (nothing was done)\n"
    assert refused.stdout == b""
    assert incident_count(server) == before


def test_a_warroom_variable_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    data_dir = tmp_path / "d\udce9"

    refused = warroom({"WARROOM_DATA_DIR": str(data_dir)}, "db", "upgrade")

    assert refused.returncode == 2, refused.stderr
    said = refused.stderr.decode()
    assert said.startswith("error: the environment variable WARROOM_DATA_DIR: byte 0xe9 at character "), said
    assert "Traceback" not in said and said.count("\n") == 1
    assert not os.path.exists(os.fsencode(data_dir))


def test_a_variable_warroom_does_not_read_may_hold_any_bytes(tmp_path: Path) -> None:
    """A deploy script's own WARROOM_RELEASE is not Warroom's to refuse: it stopped even ``--help``."""
    shown = warroom({"WARROOM_RELEASE": "caf\udce9"}, "--help")
    assert shown.returncode == 0, shown.stderr
    assert b"Usage" in shown.stdout


# Output that cannot be written: one line on stderr and exit 1 (the disk full was a traceback; a closed
# standard output exited 0 having written nothing). A broken pipe is quiet, exit 0, for every command and
# for --help alike.
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
@pytest.mark.parametrize("args", [["incident", "list", "--json"], ["incident", "list"], ["--help"]])
def test_output_to_a_full_disk_is_one_line_and_exit_1(server: dict[str, str], args: list[str]) -> None:
    with open("/dev/full", "w") as full:
        written = subprocess.run(
            [sys.executable, "-m", "warroom", *args],
            env={**os.environ, **server},
            stdin=subprocess.DEVNULL,
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    assert written.returncode == 1
    assert written.stderr.decode() == "error: cannot write the output: No space left on device\n"


def test_a_closed_standard_output_is_said_and_nothing_is_done(server: dict[str, str]) -> None:
    before = incident_count(server)

    closed = subprocess.run(
        [
            "sh",
            "-c",
            'exec "$0" -m warroom incident create "Unseen" --severity P3 --service api >&-',
            sys.executable,
        ],
        env={**os.environ, **server},
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=60,
    )

    assert closed.returncode == 1
    assert closed.stderr.decode().startswith("error: standard output is closed: nothing was done")
    assert incident_count(server) == before


@pytest.mark.parametrize("args", [["--help"], ["incident", "--help"], ["incident", "list"], ["version"]])
def test_a_broken_pipe_is_quiet_and_exit_0_for_every_command(server: dict[str, str], args: list[str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "warroom", *args],
        env={**os.environ, **server},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()  # the reader gone before the first write, as `| head -1` after its line
    said = process.stderr.read()
    process.stderr.close()

    assert process.wait(timeout=60) == 0
    assert said == b""
