"""QA round (an SRE scripting Warroom from cron), against ``warroom serve`` as a subprocess: a write the
database holds up is said to be of unknown outcome (it is made after all), piped tables keep every column
and row on a line, and ``notify test --json`` fails as the text does."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import run_cli, serve_for_cli
from tests.peers import free_port, wait_until

pytestmark = pytest.mark.e2e

LONG_TITLE = "Checkout failing for EU customers in every region since the 14:02 deploy of payments-api v2.42"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    directory = tmp_path_factory.mktemp("scripting")
    config = directory / "org.yaml"
    config.write_text(
        f"""
organization: Scripting QA
notification_channels:
  - name: deadhook
    type: webhook
    settings: {{url: "http://127.0.0.1:{free_port()}/nowhere", secret: "x"}}
"""
    )
    retries = {"WARROOM_JOB_RETRY_BASE_SECONDS": "0.05", "WARROOM_JOB_RETRY_CAP_SECONDS": "0.2"}
    with serve_for_cli(config, directory, token_name="cron", role="admin", extra_env=retries) as env:
        yield env


def database_file(env: dict[str, str]) -> Path:
    return Path(env["WARROOM_DATABASE_URL"].removeprefix("sqlite:///"))


def warroom(env: dict[str, str], *args: str, columns: str | None = None) -> subprocess.CompletedProcess[str]:
    """``warroom ARGS`` with its output to a pipe and no terminal anywhere, as from cron; COLUMNS only if
    given (``run_cli`` sets it)."""
    merged = {**os.environ, **env}
    merged.pop("COLUMNS", None)
    if columns is not None:
        merged["COLUMNS"] = columns
    return subprocess.run(
        [sys.executable, "-m", "warroom", *args],
        env=merged,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_write_held_up_by_the_database_is_said_unknown_and_is_made(server: dict[str, str]) -> None:
    """The database locked (another process's write, a migration): the server waits for the lock, and
    makes the write when it is free. The client gave up first and said "cannot reach", exit 1, as if
    nothing had been done; a cron retry declared the incident twice."""
    locked, release = threading.Event(), threading.Event()

    def hold_the_write_lock() -> None:
        connection = sqlite3.connect(database_file(server), isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(20)
        connection.execute("ROLLBACK")
        connection.close()

    holder = threading.Thread(target=hold_the_write_lock)
    holder.start()
    try:
        assert locked.wait(10)
        created = run_cli(
            "incident", "create", "Declared while the database was locked", "--severity", "P3",
            env={**server, "WARROOM_TIMEOUT": "1"}, check=False,
        )  # fmt: skip
    finally:
        release.set()
        holder.join(20)
    message = " ".join(created.stderr.split())
    assert created.returncode == 1, created.stdout
    # Sent twice with one Idempotency-Key, both held behind the lock: neither answered in time.
    assert message == (
        f"error: no answer from {server['WARROOM_URL']} within 1 s (WARROOM_TIMEOUT), sent 2 times with one "
        "Idempotency-Key (so made once at most); the outcome is unknown: the server may have made the "
        "change; check with `warroom incident list` before retrying"
    )

    def declared() -> list[dict[str, object]]:
        listed = json.loads(run_cli("incident", "list", "--json", env=server).stdout)
        return [i for i in listed["items"] if i["title"] == "Declared while the database was locked"]

    wait_until(declared, timeout=20)  # it was made: the message was right not to say it failed

    def answer_kept() -> bool:  # the first's answer, kept for a retry though its client had gone
        with sqlite3.connect(database_file(server)) as connection:
            return bool(
                connection.execute(
                    "SELECT count(*) FROM idempotent_requests WHERE status_code = 201"
                ).fetchone()[0]
            )

    wait_until(answer_kept, timeout=20)
    assert len(declared()) == 1  # made once: the second's write was rolled back


def test_piped_tables_keep_every_column_and_each_row_on_one_line(server: dict[str, str]) -> None:
    """``warroom incident list | grep`` under cron: laid out for 80 columns, the title wrapped over three
    lines (grep found a third of it) and the commander was "not shown at this width"."""
    run_cli("incident", "create", LONG_TITLE, "--severity", "P2", "--commander", "Alice Chen", env=server)
    piped = warroom(server, "incident", "list")
    assert piped.returncode == 0, piped.stderr
    [row] = [line for line in piped.stdout.splitlines() if "Checkout failing" in line]
    assert LONG_TITLE in row and "Alice Chen" in row and "investigating" in row
    assert "commander" in piped.stdout and "not shown at this width" not in piped.stdout
    # A width that is asked for is kept (a narrow terminal's layout, as before).
    narrow = warroom(server, "incident", "list", columns="80")
    assert "not shown at this width: services, commander (--json has all)" in narrow.stdout
    assert max(len(line) for line in narrow.stdout.splitlines()) <= 80


def test_notify_test_fails_with_json_as_without(server: dict[str, str]) -> None:
    """A test message that failed exited 1, but 0 with --json: a script checking the exit status missed
    that its channel was broken."""
    for json_flag in (["--json"], []):
        result = run_cli(
            "notify", "test", "--channel", "deadhook", "--wait", "20", *json_flag, env=server, check=False
        )
        assert result.returncode == 1, (json_flag, result.stdout, result.stderr)
        if json_flag:
            assert json.loads(result.stdout)["status"] in ("failed", "dead")
