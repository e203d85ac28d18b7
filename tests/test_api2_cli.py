"""The QA round's script, end to end: the ``warroom`` CLI against ``warroom serve`` (real processes, real
HTTP). Notes of updates that change nothing else reach the timeline, four cron jobs resolving at once keep
their four notes, and the lists are followed with ``--before-id``, ``--offset`` and periods given as times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import ServerProcess, create_token, run_cli

PORT = 19860  # this branch's ports: 19860-19869


def test_notes_and_list_paging_from_the_cli(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'warroom.db'}"
    env = {"WARROOM_CONFIG": str(EXAMPLE_CONFIG), "WARROOM_DATA_DIR": str(tmp_path)}
    token = create_token("sre", "admin", database_url=database_url, env=env)
    key = (
        run_cli(
            "integration",
            "create",
            "--name",
            "scripts",
            "--type",
            "generic",
            database_url=database_url,
            env=env,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    with ServerProcess(
        database_url=database_url, config=EXAMPLE_CONFIG, data_dir=tmp_path, port=PORT
    ) as server:
        cli_env = {**env, "WARROOM_URL": server.url, "WARROOM_TOKEN": token}

        def warroom(*args: str) -> Any:
            return json.loads(run_cli(*args, "--json", env=cli_env).stdout)

        assert warroom("incident", "create", "Checkout errors", "--severity", "P2")["id"] == "INC-1"
        warroom("incident", "update", "INC-1", "--title", "renamed", "--note", "why")
        warroom("incident", "update", "INC-1", "--commander", "Alice Chen", "--note", "handoff")
        warroom("incident", "update", "INC-1", "--status", "investigating", "--note", "db checked")
        cron = [
            subprocess.Popen(
                [sys.executable, "-m", "warroom", "incident", "resolve", "INC-1", "--note", f"cron {run}"],
                env={**os.environ, **cli_env},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for run in range(4)
        ]
        assert [process.wait(timeout=60) for process in cron] == [0] * 4
        actions = [entry["action"] for entry in warroom("incident", "timeline", "INC-1")["items"]]
        assert "Title changed to 'renamed' — why" in actions
        assert "Alice Chen is incident commander — handoff" in actions
        assert "db checked (nothing changed: INC-1 was investigating already)" in actions
        for run in range(4):
            assert any(f"cron {run}" in action for action in actions), actions
        assert sum("was resolved already" in action for action in actions) == 3, actions

        for number in range(6):
            sent = httpx.post(
                f"{server.url}/api/v1/alerts?key={key}",
                json={"summary": f"disk {number}", "dedup_key": f"disk-{number}", "severity": "info"},
            )
            assert sent.status_code == 202, sent.text
        page = warroom("alerts", "list", "--limit", "2", "--before-id", "ALR-5")
        assert [alert["id"] for alert in page["items"]] == [4, 3]
        assert [a["id"] for a in warroom("alerts", "list", "--before-id", "3", "--since", "1h")["items"]] == [
            2,
            1,
        ]
        assert warroom("alerts", "list", "--until", "2020-01-01T00:00")["items"] == []

        for _ in range(3):
            warroom("notify", "test", "--channel", "console", "--wait", "0")
        every = [row["id"] for row in warroom("notify", "list")["items"]]
        assert [row["id"] for row in warroom("notify", "list", "--offset", "1")["items"]] == every[1:]
        after_first = warroom("notify", "list", "--before-id", str(every[0]))
        assert [row["id"] for row in after_first["items"]] == every[1:]
        assert after_first["total"] == len(every) - 1  # what is left

        warroom("changes", "record", "Deployed api 2.14")
        warroom("changes", "record", "Deployed api 2.15")
        assert [c["ref"] for c in warroom("changes", "list", "--before-id", "CHG-2")["items"]] == ["CHG-1"]
        assert [c["ref"] for c in warroom("changes", "list", "--offset", "1")["items"]] == ["CHG-1"]
        quiet = warroom("changes", "list", "--since", "2020-01-01T00:00", "--until", "2020-01-02T00:00Z")
        assert quiet["items"] == []
        assert warroom("incident", "list", "--before-id", "INC-1")["items"] == []

        jobs = [job["id"] for job in warroom("jobs", "list", "--database-url", database_url)["items"]]
        listed = warroom(
            "jobs", "list", "--database-url", database_url, "--before-id", str(jobs[0]), "--offset", "1"
        )
        assert [job["id"] for job in listed["items"]] == jobs[2:]
        assert listed["total"] == len(jobs) - 1  # with --before-id: what is left
        bad = run_cli("alerts", "list", "--before-id", "INC-3", env=cli_env, check=False)
        assert bad.returncode == 2 and "'INC-3' is not an id" in bad.stderr, bad.stderr
