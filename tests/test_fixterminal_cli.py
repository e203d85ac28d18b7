"""QA round (the CLI in a terminal, and not): a closed standard input (``<&-``) is no one to ask, not a
traceback; in a terminal with the output to a file, the matches and the question of an alert action by
filter show on the terminal (stderr), not in the file while the terminal waits; piped output with colour
forced (FORCE_COLOR) is as wide as its rows; a dumb terminal (TERM=dumb) and an exported COLUMNS wider than
the terminal keep a table within the terminal's right edge; ``alerts overview --watch`` on a dumb terminal
says that it runs (Rich's Live does not draw there), as to a pipe.

A real ``warroom serve`` and real CLI processes, on a real pseudo-terminal where a terminal is meant."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli

pytestmark = pytest.mark.e2e

# Settings of the person's shell that would change what is tested: each test sets those it means.
UNSET = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TERM")
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SUMMARIES = ("search latency p99 over 2s on the checkout path", "index rebuild stalled", "shard 7 unassigned")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A server with three firing alerts of the search service (each opened an incident)."""
    data_dir = tmp_path_factory.mktemp("terminal")
    with serve_for_cli(EXAMPLE_CONFIG, data_dir, token_name="on-call", role="responder") as served:
        created = run_cli("integration", "create", "--name", "search-probe", "--type", "generic", env=served)
        key = created.stdout.strip().splitlines()[-1]
        for summary in SUMMARIES:
            fired = httpx.post(
                f"{served['WARROOM_URL']}/api/v1/alerts?key={key}",
                json={"summary": summary, "dedup_key": summary, "severity": "critical", "service": "search"},
            )
            assert fired.status_code == 202, fired.text
        base = {name: value for name, value in os.environ.items() if name not in UNSET}
        yield {**base, **served, "TERM": "xterm-256color"}


def statuses(env: dict[str, str]) -> list[str]:
    listed = json.loads(run_cli("alerts", "list", "--service", "search", "--json", env=env).stdout)
    return sorted(alert["status"] for alert in listed["items"])


def widest(text: str) -> int:
    """The widest line of ``text`` as a terminal shows it (styles and carriage returns left out)."""
    return max(len(line) for line in ESCAPES.sub("", text).replace("\r", "").split("\n"))


def in_terminal(
    args: list[str],
    env: dict[str, str],
    *,
    columns: int = 80,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
    answer: tuple[str, str] | None = None,
    interrupt: tuple[str, float] | None = None,
) -> tuple[int, str]:
    """``warroom ARGS`` with a pseudo-terminal ``columns`` wide as its standard input and (unless given
    files) its output and errors; its exit status and what the terminal showed. ``answer``: once the
    terminal shows the first, type the second. ``interrupt``: Ctrl-C once the terminal shows the text, or
    after so many seconds."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "warroom", *args],
        env=env,
        stdin=slave,
        stdout=stdout if stdout is not None else slave,
        stderr=stderr if stderr is not None else slave,
        start_new_session=True,
    )
    os.close(slave)
    shown = b""
    started = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # every end of the terminal is closed: the command ended
                    break
                if not chunk:
                    break
                shown += chunk
            elif process.poll() is not None:
                break
            if answer is not None and answer[0].encode() in shown:
                os.write(master, answer[1].encode())
                answer = None
            if interrupt is not None and (
                interrupt[0].encode() in shown or time.monotonic() - started > interrupt[1]
            ):
                process.send_signal(signal.SIGINT)
                interrupt = None
            if time.monotonic() - started > 60:
                process.kill()
                raise AssertionError(f"warroom {' '.join(args)} did not end: {shown!r}")
        process.wait(timeout=30)
    finally:
        os.close(master)
    return process.returncode, shown.decode(errors="replace").replace("\r\n", "\n")


def test_a_closed_standard_input_is_no_one_to_ask(env: dict[str, str]) -> None:
    """``<&-`` made Python's sys.stdin None: input() raised "lost sys.stdin", a traceback and exit 1."""
    closed = subprocess.run(
        ["sh", "-c", 'exec "$0" -m warroom alerts ack --service search <&-', sys.executable],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    said = " ".join(closed.stderr.split())
    assert closed.returncode == 2, said
    assert "gave no answer: filters need --yes: there is no one to ask" in said
    assert "Traceback" not in said and "lost sys.stdin" not in said
    assert statuses(env) == ["firing"] * 3


def test_in_a_terminal_with_the_output_to_a_file_the_question_is_asked_on_the_terminal(
    env: dict[str, str], tmp_path: Path
) -> None:
    """``warroom alerts note --service search -m … > out.txt`` wrote the matches and "Go on? [y/N]" into
    the file and waited on a silent terminal."""
    out = tmp_path / "out.txt"
    with out.open("w") as file:
        status, terminal = in_terminal(
            ["alerts", "note", "--service", "search", "-m", "reindex started"],
            env,
            columns=200,
            stdout=file,
            answer=("Go on? [y/N]", "y\n"),
        )
    written = out.read_text()
    assert status == 0, terminal + written
    # The person saw what they confirmed, and the question, on the terminal.
    assert "3 alerts will be noted. Go on? [y/N]" in terminal
    assert all(summary in terminal for summary in SUMMARIES), terminal
    # The file has the outcome, not the question nor the table asked about.
    assert "3 of 3 alerts noted" in written
    assert "Go on?" not in written and SUMMARIES[0] not in written, written

    # Declined there: nothing changes, the file holds no question either.
    with out.open("w") as file:
        status, terminal = in_terminal(
            ["alerts", "ack", "--service", "search"], env, stdout=file, answer=("Go on? [y/N]", "n\n")
        )
    assert status == 1 and "Aborted" in terminal, terminal
    assert out.read_text() == "" and statuses(env) == ["firing"] * 3

    # Both output and errors to files: no one would see the question, so it is not asked (no silent wait).
    errors = tmp_path / "errors.txt"
    with out.open("w") as file, errors.open("w") as error_file:
        status, terminal = in_terminal(
            ["alerts", "ack", "--service", "search"], env, stdout=file, stderr=error_file
        )
    said = " ".join(errors.read_text().split())
    assert status == 2, said
    assert "filters need --yes: there is no one to ask" in said and "Go on?" not in out.read_text()
    assert statuses(env) == ["firing"] * 3


def test_piped_output_with_colour_forced_is_as_wide_as_its_rows(env: dict[str, str]) -> None:
    """FORCE_COLOR made Rich call the pipe a terminal, laid out at 80 columns with columns left out."""
    piped = subprocess.run(
        [sys.executable, "-m", "warroom", "incident", "list"],
        env={**env, "FORCE_COLOR": "1"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert piped.returncode == 0, piped.stderr
    assert "not shown at this width" not in piped.stdout, piped.stdout
    assert "commander" in piped.stdout and "services" in piped.stdout
    assert "\x1b[" in piped.stdout  # the colour FORCE_COLOR asks for stays
    titles = [line for line in ESCAPES.sub("", piped.stdout).splitlines() if "INC-" in line]
    assert len(titles) == 3 and all("│ search" in line for line in titles), piped.stdout  # one row each


def test_a_dumb_terminal_keeps_its_own_width(env: dict[str, str]) -> None:
    """TERM=dumb: Rich took 80 columns whatever the terminal's size, and the rows ran past a 60-column one."""
    status, shown = in_terminal(["incident", "list"], {**env, "TERM": "dumb"}, columns=60)
    assert status == 0, shown
    assert "INC-1" in shown and widest(shown) <= 60, shown


def test_an_exported_columns_does_not_widen_a_terminal(env: dict[str, str]) -> None:
    """COLUMNS=250 in a terminal 80 wide laid the table out 250 wide: rows ran past the right edge. It may
    narrow a terminal's table; to a pipe, it sets the width."""
    status, shown = in_terminal(["incident", "list"], {**env, "COLUMNS": "250"}, columns=80)
    assert status == 0, shown
    assert "INC-1" in shown and widest(shown) <= 80, shown
    status, shown = in_terminal(["incident", "list"], {**env, "COLUMNS": "50"}, columns=80)
    assert status == 0 and widest(shown) <= 50, shown
    piped = subprocess.run(
        [sys.executable, "-m", "warroom", "incident", "list"],
        env={**env, "COLUMNS": "60"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert widest(piped.stdout) <= 60 and "not shown at this width" in piped.stdout, piped.stdout


def test_watching_on_a_dumb_terminal_says_that_it_runs(env: dict[str, str]) -> None:
    """Rich's Live does not draw on a dumb terminal: ``alerts overview --watch`` printed nothing until
    Ctrl-C. It says once, as to a pipe, that the last screen prints at Ctrl-C."""
    status, shown = in_terminal(
        ["alerts", "overview", "--watch", "--interval", "0.5"],
        {**env, "TERM": "dumb"},
        interrupt=("the last screen prints at Ctrl-C", 8.0),
    )
    assert status == 0, shown
    announced = shown.index("watching, every 0.5s: the last screen prints at Ctrl-C")
    assert shown.count("the last screen prints at Ctrl-C") == 1
    assert "3 firing" in shown[announced:], shown  # the last screen, at Ctrl-C
    assert "\x1b[" not in shown  # a dumb terminal gets no cursor movements
