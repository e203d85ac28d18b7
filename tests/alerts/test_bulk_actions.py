"""``warroom alerts ack|snooze|resolve`` with filters instead of ids: the clean-up after a storm, shown and
confirmed before anything changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import create_token, run_cli, serve_for_cli
from warroom.alerts.schemas import AlertPage
from warroom.cli.alerts import MAX_CHOSEN, AlertChoice


def statuses(env: dict[str, str]) -> dict[str, str]:
    listed = json.loads(run_cli("alerts", "list", "--json", env=env).stdout)
    return {alert["summary"]: alert["status"] for alert in listed["items"]}


@pytest.mark.e2e
def test_alerts_chosen_by_filters_are_shown_confirmed_and_changed(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="storm-cleanup", role="responder") as env:
        created = run_cli("integration", "create", "--name", "nas-bridge", "--type", "generic", env=env)
        key = created.stdout.strip().splitlines()[-1]
        for summary, host in [("RAID degraded", "nas1"), ("fan failed", "nas1"), ("disk 91%", "db1")]:
            fired = httpx.post(
                f"{env['WARROOM_URL']}/api/v1/alerts?key={key}",
                json={
                    "summary": summary,
                    "dedup_key": summary,
                    "severity": "warning",
                    "labels": {"host": host},
                },
            )
            assert fired.status_code == 202, fired.text

        # At a glance first: three warnings firing, none routed (warnings page nobody in the example).
        glance = run_cli("alerts", "overview", env={**env, "COLUMNS": "160"}).stdout
        assert "3 firing" in glance and "3 unrouted" in glance and "New alerts since" in glance
        assert json.loads(run_cli("alerts", "overview", "--json", env=env).stdout)["severities"] == [
            {"severity": "warning", "firing": 3, "acknowledged": 0}
        ]
        both = run_cli("alerts", "overview", "--watch", "--json", env=env, check=False)
        assert both.returncode == 2 and "cannot be combined" in both.stderr
        # A token that may not act is told once, not once per alert, and nothing changes.
        viewer = {**env, "WARROOM_TOKEN": create_token("onlooker", "viewer", env=env)}
        denied = run_cli("alerts", "ack", "--source", "generic", "--yes", env=viewer, check=False)
        assert denied.returncode == 1 and denied.stderr.count("error:") == 1, denied.stderr
        assert "responder" in denied.stderr
        acked = run_cli("alerts", "ack", "--label", "host=nas1", "--yes", env=env)
        assert "RAID degraded" in acked.stdout and "2 of 2 alerts acknowledged" in acked.stdout
        assert statuses(env) == {
            "RAID degraded": "acknowledged",
            "fan failed": "acknowledged",
            "disk 91%": "firing",
        }
        # Acknowledging chooses among firing alerts only.
        none_left = run_cli("alerts", "ack", "--label", "host=nas1", "--yes", env=env)
        assert "no firing alert matches" in none_left.stdout
        # Snoozing chooses among firing and acknowledged ones: nas1's two, until the RAID rebuild ends.
        snoozed = run_cli(
            "alerts", "snooze", "--label", "host=nas1", "--for", "2h", "--yes", "--json", env=env
        )
        assert sorted(alert["summary"] for alert in json.loads(snoozed.stdout)) == [
            "RAID degraded",
            "fan failed",
        ]
        listed = json.loads(run_cli("alerts", "list", "--snoozed", "--json", env=env).stdout)
        assert {alert["summary"] for alert in listed["items"]} == {"RAID degraded", "fan failed"}
        bad_length = run_cli(
            "alerts", "snooze", "--label", "host=db1", "--for", "9d", "--yes", env=env, check=False
        )
        # Refused once, before any alert is chosen.
        assert bad_length.returncode == 2 and "at most 7d" in bad_length.stderr and not bad_length.stdout
        # One note for all of them, and the disk's alert onto an incident someone declared for it.
        noted = run_cli(
            "alerts", "note", "--label", "host=nas1", "-m", "RAID rebuild running", "--yes", env=env
        )
        assert "2 of 2 alerts noted" in noted.stdout
        shown = run_cli("alerts", "show", "--json", str(json.loads(snoozed.stdout)[0]["id"]), env=env).stdout
        assert [note["body"] for note in json.loads(shown)["notes"]] == ["RAID rebuild running"]
        one_only = run_cli(
            "alerts", "note", "--label", "host=nas1", "--delete", "1", "--yes", env=env, check=False
        )
        assert one_only.returncode == 2 and "name one" in one_only.stderr
        declared = run_cli("incident", "create", "db1 disk", "--severity", "P3", "--json", env=env)
        ref = json.loads(declared.stdout)["id"]
        attached = run_cli("alerts", "attach", ref, "--label", "host=db1", "--yes", env=env)
        assert "1 of 1 alerts attached" in attached.stdout

        # Asked first: no changes nothing, and neither does an answer that never comes.
        for answer in ("n\n", ""):
            declined = run_cli(
                "alerts", "resolve", "--label", "host=nas1", env=env, check=False, answer=answer
            )
            # A "no" declines (1); no answer at all says --yes is needed (2, a usage error).
            assert declined.returncode == (1 if answer else 2), declined.stderr
            assert "2 alerts will be resolved. Go on?" in declined.stdout
        assert statuses(env)["RAID degraded"] == "acknowledged"
        resolved = run_cli(
            "alerts", "resolve", "--label", "host=nas1", "--note", "RAID rebuilt", env=env, answer="y\n"
        )
        assert "2 of 2 alerts resolved" in resolved.stdout
        assert statuses(env) == {"RAID degraded": "resolved", "fan failed": "resolved", "disk 91%": "firing"}

        # Refusals change nothing.
        for args, problem in [
            (["resolve"], "name the alerts"),
            (["resolve", "1", "--source", "generic"], "not both"),
            (["resolve", "--source", "generic", "--json"], "filters need --yes"),
            (["ack", "--label", "host"], "--label"),
        ]:
            refused = run_cli("alerts", *args, env=env, check=False)
            assert refused.returncode != 0 and problem in refused.stderr, (args, refused.stderr)
        assert statuses(env)["disk 91%"] == "firing"

        as_json = run_cli("alerts", "resolve", "--source", "generic", "--yes", "--json", env=env)
        assert [alert["summary"] for alert in json.loads(as_json.stdout)] == ["disk 91%"]
        assert set(statuses(env).values()) == {"resolved"}


def test_a_filter_that_matches_too_many_is_refused_before_anything_changes() -> None:
    class Listing:
        """Answers the first page of a list as the server would for a filter matching too many."""

        calls = 0

        def list_alerts(self, **_: Any) -> AlertPage:
            self.calls += 1
            return AlertPage(items=[], total=MAX_CHOSEN + 1, limit=500, offset=0)

    listing = Listing()
    with pytest.raises(typer.Exit):
        AlertChoice(["firing"], source=["email"]).matching(listing)  # type: ignore[arg-type]
    assert listing.calls == 1  # refused on the first page, before fetching the rest
