"""The long-running commands log one line per record: text from a sender or a peer cannot forge a log line or
send terminal escapes to whoever tails ``warroom serve`` or ``warroom worker`` (``warroom.loglines``)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import warroom
from warroom.cli.main import SERVE_LOG_FORMAT, app
from warroom.loglines import format_exception, one_line
from warroom.notify.channels import DeliveryError

FORGED = "g\x1b]0;PWN\x07\r\nINFO:     forged line"
FORGED_SHOWN = "g\\x1b]0;PWN\\x07\\r\\nINFO:     forged line"
PEER_BODY = "\x1b]0;PWNED\x07\x1b[2J\u202eyes\r\nX-Injected: yes"
PEER_BODY_SHOWN = "\\x1b]0;PWNED\\x07\\x1b[2J\\u202eyes\\r\\nX-Injected: yes"


def test_one_line_shows_controls_and_bidi_characters_as_escapes() -> None:
    assert one_line(FORGED) == FORGED_SHOWN
    assert one_line("a\tb\x00c\x7fd\x85e\u2028f\u200fg\u2066h") == (
        "a\\tb\\x00c\\x7fd\\x85e\\u2028f\\u200fg\\u2066h"
    )
    ordinary = 'group {}:{alertname="HighErrorRate"} — 3 alert(s), "ok" \\n stays as typed, emoji 🔥'
    assert one_line(ordinary) == ordinary


def test_a_record_with_control_characters_is_one_line(served_log: Callable[[], str]) -> None:
    log = logging.getLogger("warroom.alerts")
    log.warning("%s delivery of group %s: %s", "alertmanager", FORGED, "3 alert(s) left out")
    log.warning("an ordinary line, %d of it", 1)
    assert served_log() == (
        f"WARNING:     warroom.alerts: alertmanager delivery of group {FORGED_SHOWN}: 3 alert(s) left out\n"
        "WARNING:     warroom.alerts: an ordinary line, 1 of it\n"
    )


def test_a_traceback_keeps_its_lines_and_escapes_the_rest(served_log: Callable[[], str]) -> None:
    log = logging.getLogger("warroom.jobs")
    try:
        try:
            raise ValueError("first\nINFO:     forged by the cause")
        except ValueError as cause:
            error = DeliveryError(f"Slack answered 500: {PEER_BODY}")
            error.add_note("a note\r\nINFO:     forged by a note")
            raise error from cause
    except DeliveryError:
        log.exception("job %s failed: %s", 7, f"Slack answered 500: {PEER_BODY}")
    written = served_log()
    assert "\x1b" not in written and "\r" not in written and "\u202e" not in written
    lines = written.splitlines()
    assert lines[0] == f"ERROR:     warroom.jobs: job 7 failed: Slack answered 500: {PEER_BODY_SHOWN}"
    assert "ValueError: first\\nINFO:     forged by the cause" in lines
    assert f"warroom.notify.channels.DeliveryError: Slack answered 500: {PEER_BODY_SHOWN}" in lines
    assert "a note\\r\\nINFO:     forged by a note" in lines
    assert not any(line.startswith("INFO:") or line.startswith("X-Injected") for line in lines)
    # Still a traceback, on its lines.
    assert lines.count("Traceback (most recent call last):") == 2
    assert "The above exception was the direct cause of the following exception:" in lines
    assert sum(line.startswith('  File "') for line in lines) == 2


def test_an_ordinary_traceback_is_as_before() -> None:
    def fail() -> None:
        try:
            {}["missing"]
        except KeyError:
            raise RuntimeError("could not\tfind it") from None

    try:
        fail()
    except RuntimeError:
        info = sys.exc_info()
    plain = logging.Formatter().formatException(info)  # type: ignore[arg-type]
    assert format_exception(info) == plain.replace("\t", "\\t")  # type: ignore[arg-type]
    try:
        raise OSError(5, "Input/output error")
    except OSError:
        info = sys.exc_info()
    assert format_exception(info) == logging.Formatter().formatException(info)  # type: ignore[arg-type]


def test_a_line_without_the_setup_would_be_forged() -> None:
    """What the tests above guard against: a plain handler writes the text as it is."""
    handler = logging.StreamHandler(stream := io.StringIO())
    handler.setFormatter(logging.Formatter(SERVE_LOG_FORMAT))
    handler.handle(logging.makeLogRecord({"name": "warroom.alerts", "msg": "group %s", "args": (FORGED,)}))
    assert "\nINFO:     forged line" in stream.getvalue()


UVICORN_LOGS = """
import logging, sys
import uvicorn
from warroom.cli.main import uvicorn_options
from warroom.settings import Settings

uvicorn.Config(lambda scope, receive, send: None, **uvicorn_options(Settings()))  # configures its logging
log = logging.getLogger("uvicorn.error")
log.warning("peer said %s", sys.argv[1])
try:
    raise RuntimeError(sys.argv[1])
except RuntimeError:
    log.exception("Exception in ASGI application")
"""


def test_uvicorns_own_lines_are_one_line_too(tmp_path: Path) -> None:
    """serve's uvicorn logs through handlers of its own (not the root's): they have the filter too."""
    source = Path(warroom.__file__).resolve().parent.parent
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("WARROOM_", "FORWARDED_"))
    }
    ran = subprocess.run(
        [sys.executable, "-c", UVICORN_LOGS, PEER_BODY],
        env={**environment, "PYTHONPATH": str(source), "WARROOM_DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = ran.stderr.splitlines()
    assert "\x1b" not in ran.stderr and "\r" not in ran.stderr
    assert lines[0] == f"WARNING:  peer said {PEER_BODY_SHOWN}"
    assert lines[1] == "ERROR:    Exception in ASGI application"
    assert lines[-1] == f"RuntimeError: {PEER_BODY_SHOWN}"
    assert not any(line.startswith("X-Injected") for line in lines)


def test_the_worker_command_sets_it_up(database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """``warroom worker`` configures logging with the filter too (under pytest, on pytest's handlers)."""
    worked = CliRunner().invoke(app, ["worker", "--once", "--database-url", database_url])
    assert worked.exit_code == 0, worked.output
    logging.getLogger("warroom.jobs").warning("peer said %s", PEER_BODY)
    assert caplog.text.splitlines()[-1].endswith(f"peer said {PEER_BODY_SHOWN}")


def test_a_message_that_only_ends_in_a_newline_is_kept_and_backslashes_read_apart(
    served_log: Callable[[], str],
) -> None:
    """uvicorn's "Exception in ASGI application\\n" stays as it was (a final newline forges nothing); where a
    message is escaped, a backslash sent as text is doubled, so it cannot pass for an escape."""
    logging.getLogger("warroom.test").error("Exception in ASGI application\n")
    logging.getLogger("warroom.test").warning("group %s", "a\nb\\nc")
    lines = served_log().splitlines()
    assert "ERROR:     warroom.test: Exception in ASGI application" in lines
    assert "WARNING:     warroom.test: group a\\nb\\\\nc" in lines
    assert one_line("C:\\temp") == "C:\\temp"  # nothing to escape: as it was
