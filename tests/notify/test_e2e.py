"""``warroom serve`` as a subprocess with its embedded worker; CLI channel tests and dead letters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.notify.peers import Recorder, free_port
from warroom.notify.signing import verify

WARROOM = str(Path(sys.executable).parent / "warroom")
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
    port = free_port()
    env = {
        **os.environ,
        "WARROOM_DATA_DIR": str(tmp_path),
        "WARROOM_DATABASE_URL": f"sqlite:///{tmp_path / 'e2e.db'}",
        "WARROOM_CONFIG": str(config),
        "WARROOM_WORKER_POLL_INTERVAL": "0.05",
        "WARROOM_JOB_RETRY_BASE_SECONDS": "0.05",
        "WARROOM_JOB_RETRY_CAP_SECONDS": "0.2",
        "WARROOM_NOTIFY_MAX_ATTEMPTS": "2",
        "E2E_HOOK_SECRET": "e2e-secret",
    }
    created = subprocess.run(
        [WARROOM, "token", "create", "--name", "e2e", "--role", "admin"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    token = created.stdout.strip().splitlines()[-1]
    process = subprocess.Popen(
        [WARROOM, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("warroom serve did not start")
    try:
        yield {**env, "WARROOM_URL": url, "WARROOM_TOKEN": token}
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([WARROOM, *args], env=env, capture_output=True, text=True, timeout=60)


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
        dead = [d for d in json.loads(listed.stdout) if d["id"] == dead_id] if listed.stdout.strip() else []
        time.sleep(0.1)
    assert dead, "the failing delivery never became a dead letter"
    assert dead[0]["attempts"] == 2
    table = cli({**server, "COLUMNS": "200"}, "notify", "failures")
    assert table.returncode == 0
    assert "deadhook" in table.stdout

    unknown = cli(server, "notify", "test", "--channel", "pager")
    assert unknown.returncode == 1
    assert "unknown notification channel 'pager'" in unknown.stderr
