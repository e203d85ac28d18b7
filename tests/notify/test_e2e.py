"""``warroom serve`` as a subprocess with its embedded worker; CLI channel tests and dead letters."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.e2e.server import run_cli, serve_for_cli
from tests.peers import Recorder, free_port
from warroom.notify.signing import verify

pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path, recorder: Recorder) -> Iterator[dict[str, str]]:
    closed_port = free_port()
    config = tmp_path / "org.yaml"
    config.write_text(
        f"""
organization: E2E Org
notification_channels:
  - name: hook
    type: webhook
    settings: {{url: "{recorder.url("/hook")}", secret: "${{E2E_HOOK_SECRET}}"}}
  - name: deadhook
    type: webhook
    settings: {{url: "http://127.0.0.1:{closed_port}/nowhere", secret: "x"}}
  - name: console
    type: console
"""
    )
    retries = {
        "WARROOM_JOB_RETRY_BASE_SECONDS": "0.05",
        "WARROOM_JOB_RETRY_CAP_SECONDS": "0.2",
        "WARROOM_NOTIFY_MAX_ATTEMPTS": "2",
        "E2E_HOOK_SECRET": "e2e-secret",
    }
    with serve_for_cli(config, tmp_path, token_name="e2e", role="admin", extra_env=retries) as env:
        yield env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, env=env, check=False)


def test_notify_test_and_failures_against_a_running_server(
    server: dict[str, str], recorder: Recorder
) -> None:
    sent = cli(server, "notify", "test", "--channel", "hook", "--note", "hello from e2e", "--json")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    delivery = json.loads(sent.stdout)
    assert delivery["status"] == "sent"
    [request] = recorder.to("/hook")
    assert verify(
        "e2e-secret",
        timestamp=request.headers["X-Warroom-Timestamp"],
        body=request.body,
        signature=request.headers["X-Warroom-Signature"],
        now=datetime.now(UTC),
    )
    assert "hello from e2e" in json.loads(request.body)["text"]

    queued = cli(server, "notify", "test", "--channel", "deadhook", "--wait", "0", "--json")
    assert queued.returncode == 0, queued.stdout + queued.stderr
    dead_id = json.loads(queued.stdout)["id"]
    deadline = time.monotonic() + 30
    dead: list[dict[str, object]] = []
    while time.monotonic() < deadline and not dead:
        listed = cli(server, "notify", "failures", "--json")
        assert listed.returncode == 0, listed.stderr
        dead = (
            [d for d in json.loads(listed.stdout)["items"] if d["id"] == dead_id]
            if listed.stdout.strip()
            else []
        )
        time.sleep(0.1)
    assert dead, "the failing delivery never became a dead letter"
    assert dead[0]["attempts"] == 2
    table = cli({**server, "COLUMNS": "200"}, "notify", "failures")
    assert table.returncode == 0
    assert "deadhook" in table.stdout

    unknown = cli(server, "notify", "test", "--channel", "pager")
    assert unknown.returncode == 1
    assert "unknown notification channel 'pager'" in unknown.stderr
