"""``warroom alerts list --watch``: the list kept on screen and refreshed, new and changed alerts marked."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli
from warroom.alerts.models import AlertStatus
from warroom.alerts.schemas import AlertPage, AlertRead
from warroom.cli.alerts import _watched_table

SEEN = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def alert(alert_id: int, status: AlertStatus = AlertStatus.firing, occurrences: int = 1) -> AlertRead:
    fields: dict[str, Any] = {
        "id": alert_id,
        "ref": f"ALR-{alert_id}",
        "source": "generic",
        "integration_id": 1,
        "dedup_key": f"key-{alert_id}",
        "alert_type": "generic",
        "status": status,
        "summary": "disk 81%",
        "severity": "info",
        "service": None,
        "labels": {},
        "annotations": {},
        "links": [],
        "first_seen_at": SEEN,
        "last_seen_at": SEEN,
        "acknowledged_at": None,
        "resolved_at": None,
        "occurrences": occurrences,
        "incident": None,
        "rules": [],
        "unrouted": True,
    }
    return AlertRead.model_validate(fields)


def page(*alerts: AlertRead) -> AlertPage:
    return AlertPage(items=list(alerts), total=len(alerts), limit=50, offset=0)


def test_a_refresh_marks_new_and_changed_alerts() -> None:
    first = _watched_table(page(alert(2), alert(1)), None, 2.0)
    assert [row.style for row in first.rows] == [None, None]
    assert "new" not in str(first.caption)
    before = {2: (AlertStatus.firing, 1), 1: (AlertStatus.firing, 1)}
    later = page(alert(4), alert(3), alert(2, occurrences=2), alert(1, AlertStatus.resolved))
    refreshed = _watched_table(later, before, 2.0)
    assert [row.style for row in refreshed.rows] == ["bold", "bold", "reverse", "reverse"]
    assert "2 new, 2 changed since the last refresh" in str(refreshed.caption)
    quiet = _watched_table(later, {a.id: (a.status, a.occurrences) for a in later.items}, 0.5)
    assert [row.style for row in quiet.rows] == [None] * 4
    assert "every 0.5s" in str(quiet.caption) and "0 new, 0 changed" in str(quiet.caption)


@pytest.mark.e2e
def test_watch_follows_the_server_until_ctrl_c(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="watch-e2e", role="viewer") as env:
        created = run_cli("integration", "create", "--name", "script", "--type", "generic", env=env)
        key = created.stdout.strip().splitlines()[-1]

        def send(**fields: Any) -> None:
            answer = httpx.post(f"{env['WARROOM_URL']}/api/v1/alerts?key={key}", json=fields, timeout=10)
            assert answer.status_code == 202, answer.text

        send(summary="disk 81%", severity="info", dedup_key="disk")
        watching = subprocess.Popen(
            [sys.executable, "-m", "warroom", "alerts", "list", "--watch", "--interval", "0.2"],
            env={**os.environ, **env, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert watching.stderr is not None
            # Its first screen is drawn (on a busy machine the CLI may take seconds to start).
            assert "watching, every 0.2s" in watching.stderr.readline()
            time.sleep(1)  # a few refreshes
            send(summary="disk 85%", severity="info", dedup_key="disk")
            send(summary="queue slow", severity="warning", dedup_key="queue")
            time.sleep(1.5)
            assert watching.poll() is None  # still watching
            watching.send_signal(signal.SIGINT)
            out, err = watching.communicate(timeout=15)
        finally:
            watching.kill()
        assert watching.returncode == 0, err
        # Without a terminal, the last screen is what is printed.
        assert "Alerts (2 of 2)" in out and "queue slow" in out and "disk 85%" in out
        assert "Ctrl-C to stop" in out

        mixed = run_cli("alerts", "list", "--watch", "--json", env=env, check=False)
        assert mixed.returncode == 2 and "cannot be combined with --json" in mixed.stderr
        refused = run_cli("alerts", "list", "--watch", env={**env, "WARROOM_TOKEN": "wr_nope"}, check=False)
        assert refused.returncode == 1 and "401" in refused.stderr
