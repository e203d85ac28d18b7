"""Reloading the org file in a running process: POST /api/v1/config/reload, warroom config reload, kill -HUP.
A file with problems is refused and the running one stays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.alerts.conftest import make_key
from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import ServerProcess, create_token, run_cli
from tests.peers import wait_until
from warroom import reload
from warroom.alerts.expiry import SWEEP_KIND
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.models import Job, JobStatus
from warroom.orgconfig import OrgConfig, load_org_config
from warroom.settings import Settings

CI_FORMAT = {"name": "ci", "summary": "{{ payload.pipeline }} failed", "dedup_key": "{{ payload.pipeline }}"}


def write_org(path: Path, **automation: Any) -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["automation"].update(automation)
    path.write_text(yaml.safe_dump(data))


@pytest.fixture
def org_file(tmp_path: Path) -> Path:
    path = tmp_path / "org.yaml"
    write_org(path)
    return path


@pytest.fixture
def settings(tmp_path: Path, database_url: str, org_file: Path) -> Settings:
    return Settings(data_dir=tmp_path, database_url=database_url, config=org_file, run_worker=False)


@pytest.fixture
def org(org_file: Path) -> OrgConfig:
    return load_org_config(org_file)


def worker_command(org_file: Path, database_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "warroom",
        "worker",
        "--config",
        str(org_file),
        "--database-url",
        database_url,
    ]


def formats(org: OrgConfig) -> list[dict[str, Any]]:
    return [f.model_dump(exclude_defaults=True) for f in org.automation.webhook_formats]


def test_reload_applies_a_new_file_and_refuses_a_bad_one(
    api: TestClient,
    context: AppContext,
    org_file: Path,
    admin: dict[str, str],
    responder: dict[str, str],
    viewer: dict[str, str],
) -> None:
    key = make_key(context, "webhook")
    ci_failed = {"pipeline": "deploy-api"}
    assert api.post(f"/api/v1/alerts/webhook/ci?key={key}", json=ci_failed).status_code == 404
    count = len(formats(context.org)) + 1  # the example's, and CI_FORMAT
    write_org(
        org_file,
        webhook_formats=[*formats(context.org), CI_FORMAT],
        auto_resolve=[{"match": {"source": ["webhook"]}, "after": "4h"}],
    )
    assert api.post("/api/v1/config/reload", headers=responder).status_code == 403
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    assert (
        reloaded.json()["file"] == str(org_file) and f"{count} webhook formats" in reloaded.json()["summary"]
    )
    assert api.post(f"/api/v1/alerts/webhook/ci?key={key}", json=ci_failed).status_code == 202
    # A new auto_resolve entry: its sweep chain was started, as at start.
    with context.db.read() as session:
        assert session.scalars(select(Job).where(Job.kind == SWEEP_KIND)).first() is not None
    shown = api.get("/api/v1/config", headers=viewer).json()
    assert shown["loaded_at"] == reloaded.json()["loaded_at"]

    # A file with problems: 422 with each one, and the running file stays.
    text = org_file.read_text()
    org_file.write_text(text.replace("name: ci", "name: Bad Name").replace("after: 4h", "after: soon"))
    refused = api.post("/api/v1/config/reload", headers=admin)
    assert refused.status_code == 422, refused.text
    problems = refused.json()["error"]["details"]
    ci_index = count - 1
    assert {p["location"].split(".")[1] for p in problems} == {
        f"webhook_formats[{ci_index}]",
        "auto_resolve[0]",
    }
    assert all(p["line"] for p in problems)
    assert api.post(f"/api/v1/alerts/webhook/ci?key={key}", json=ci_failed).status_code == 202
    assert api.get("/api/v1/config", headers=viewer).json()["loaded_at"] == shown["loaded_at"]
    org_file.unlink()
    gone = api.post("/api/v1/config/reload", headers=admin)
    assert gone.status_code == 422 and "No such file" in json.dumps(gone.json())


def test_a_file_that_is_not_utf8_is_refused_with_its_place(
    api: TestClient,
    context: AppContext,
    org_file: Path,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A Latin-1 byte in the file: the API answered 500 and kill -HUP logged a traceback."""
    loaded_at = context.org_loaded_at
    org_file.write_bytes(org_file.read_bytes() + b"# caf\xe9 rules\n")
    line = org_file.read_bytes().count(b"\n")
    refused = api.post("/api/v1/config/reload", headers=admin)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["details"] == [
        {
            "location": "(file)",
            "line": line,
            "message": "byte 0xe9 at column 6 is not UTF-8 (invalid continuation byte); "
            "save the file as UTF-8",
        }
    ]
    reload.reload_logged(context)  # as kill -HUP does
    assert [r.levelname for r in caplog.records if r.name == "warroom.reload"] == ["ERROR"]
    assert "Traceback" not in caplog.text and "byte 0xe9 at column 6 is not UTF-8" in caplog.text
    assert context.org_loaded_at == loaded_at


@pytest.mark.e2e
def test_kill_hup_and_the_cli_reload_a_running_server(tmp_path: Path, org_file: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'e2e.db'}"
    env = {"WARROOM_DATABASE_URL": database_url, "WARROOM_CONFIG": str(org_file)}
    admin = create_token("e2e-admin", "admin", env=env)
    key = run_cli("integration", "create", "--name", "ci", "--type", "webhook", env=env).stdout.split()[-1]
    with ServerProcess(
        database_url=database_url, config=org_file, data_dir=tmp_path, extra_args=["--no-worker"]
    ) as server:
        url = f"{server.url}/api/v1/alerts/webhook/ci?key={key}"
        assert httpx.post(url, json={"pipeline": "nightly"}).status_code == 404
        write_org(org_file, webhook_formats=[CI_FORMAT])
        assert server.process is not None
        server.process.send_signal(signal.SIGHUP)
        wait_until(lambda: httpx.post(url, json={"pipeline": "nightly"}).status_code == 202)
        assert "reloaded" in server.log_path.read_text()  # the operator sees it took

        cli_env = {**env, "WARROOM_URL": server.url, "WARROOM_TOKEN": admin}
        write_org(org_file, webhook_formats=[{**CI_FORMAT, "name": "ci2"}])
        done = run_cli("config", "reload", env=cli_env)
        assert "reloaded" in done.stdout and "1 webhook format," in done.stdout
        status = run_cli("config", "status", env={**cli_env, "COLUMNS": "300"})
        assert str(org_file) in status.stdout and "read 20" in status.stdout
        assert (
            httpx.post(
                f"{server.url}/api/v1/alerts/webhook/ci2?key={key}", json={"pipeline": "x"}
            ).status_code
            == 202
        )
        org_file.write_text(org_file.read_text().replace("name: ci2", "name: Bad Name"))
        refused = run_cli("config", "reload", env=cli_env, check=False)
        assert refused.returncode == 2 and "not reloaded" in refused.stderr
        assert "webhook_formats[0].name" in refused.stderr
        # After a bad kill -HUP too, the server runs on with what it had.
        server.process.send_signal(signal.SIGHUP)
        assert httpx.get(f"{server.url}/healthz").status_code == 200
        assert (
            httpx.post(
                f"{server.url}/api/v1/alerts/webhook/ci2?key={key}", json={"pipeline": "y"}
            ).status_code
            == 202
        )
        # A file that routes nothing in place of one that does: only with --force, and loudly.
        org_file.write_text("organization: Acme Cloud\n")
        bare = run_cli("config", "reload", env={**cli_env, "COLUMNS": "300"}, check=False)
        assert bare.returncode == 2 and "every alert would go unrouted" in bare.stderr
        assert "--force" in bare.stderr
        forced = run_cli("config", "reload", "--force", env={**cli_env, "COLUMNS": "300"})
        assert "reloaded" in forced.stdout and "0 services" in forced.stdout
        assert "warning it has no automation rules, where the running file has" in forced.stderr


@pytest.mark.e2e
def test_kill_hup_reloads_a_worker(tmp_path: Path, org_file: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'worker.db'}"
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            worker_command(org_file, database_url), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: "worker " in log_path.read_text(), timeout=30)
        write_org(org_file, webhook_formats=[CI_FORMAT])
        worker.send_signal(signal.SIGHUP)
        wait_until(lambda: "reloaded" in log_path.read_text(), timeout=30)
        assert "1 webhook format," in log_path.read_text()
        org_file.write_text("automation: {rules: 3}\n")
        worker.send_signal(signal.SIGHUP)
        wait_until(lambda: "not reloaded" in log_path.read_text(), timeout=30)
        assert worker.poll() is None  # it runs on with the file it had
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def test_a_reload_takes_effect_even_when_its_recurring_jobs_cannot_start_now(
    context: AppContext, org_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def database_unwritable(_: AppContext) -> None:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(reload, "start_recurring", database_unwritable)
    write_org(org_file, webhook_formats=[CI_FORMAT])
    loaded = reload.reload_org(context)
    assert "1 webhook format," in loaded.summary
    assert context.org.automation.webhook_format("ci") is not None
    assert "recurring jobs could not be started now" in caplog.text


def test_a_reload_through_the_api_reaches_the_other_processes(
    api: TestClient, context: AppContext, settings: Settings, org_file: Path, admin: dict[str, str]
) -> None:
    """Two processes on one database (a server and a worker, or two servers): a reload asked of one is
    announced, and the other reads its own org file again when it next looks."""
    from warroom.db import Database

    other = AppContext(
        settings=settings, db=Database(settings.resolved_database_url), org=load_org_config(org_file)
    )
    try:
        other.reloads_seen = reload.latest_reload(other)  # as its watcher does when it starts
        assert reload.follow_announced(other) is False  # nothing announced yet

        write_org(org_file, webhook_formats=[CI_FORMAT])
        assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
        assert other.org.automation.webhook_format("ci") is None  # not yet: it has not looked
        assert reload.follow_announced(other) is True
        assert other.org.automation.webhook_format("ci") is not None
        assert reload.follow_announced(other) is False  # once per announcement
        # The process that announced it does not read the file a second time.
        loaded_at = context.org_loaded_at
        assert reload.follow_announced(context) is False and context.org_loaded_at == loaded_at

        # A file the other cannot read: it keeps what it had, and says so.
        org_file.write_text("automation: {rules: 3}\n")
        reload.announce(context, "admin-user")
        assert reload.follow_announced(other) is True
        assert other.org.automation.webhook_format("ci") is not None
        # kill -HUP is for one process: it announces nothing.
        write_org(org_file)
        reload.reload_logged(context)
        assert reload.follow_announced(other) is False
    finally:
        other.db.dispose()


def test_a_process_does_not_follow_its_own_announcement_found_by_a_poll_under_way(
    context: AppContext, org_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher's poll began (its query asks for reloads after the last one seen) as this process announced
    its own reload, and found it: it read the file a second time, logging "a reload was announced" (the CLI
    reload test saw it in a server's log, now and then)."""
    context.reloads_seen = reload.latest_reload(context)
    loaded_at = context.org_loaded_at
    real_execute = Session.execute

    def announced_meanwhile(session: Session, statement: Any, *args: Any, **kwargs: Any) -> Any:
        # This process announces (and marks seen) between the poll's query being built and its answer.
        reload.announce(context, "admin-user")
        return real_execute(session, statement, *args, **kwargs)

    monkeypatch.setattr(Session, "execute", announced_meanwhile)
    try:
        assert reload.follow_announced(context) is False
    finally:
        monkeypatch.undo()
    assert context.org_loaded_at == loaded_at
    assert context.reloads_seen == reload.latest_reload(context)


@pytest.mark.e2e
def test_one_cli_reload_reaches_every_server(tmp_path: Path, org_file: Path) -> None:
    """Two servers on one database (as behind a load balancer) and a worker: `warroom config reload` asked
    of one, and the other server and the worker read the file again within their poll."""
    database_url = f"sqlite:///{tmp_path / 'two.db'}"
    env = {"WARROOM_DATABASE_URL": database_url, "WARROOM_CONFIG": str(org_file)}
    admin = create_token("e2e-admin", "admin", env=env)
    key = run_cli("integration", "create", "--name", "ci", "--type", "webhook", env=env).stdout.split()[-1]
    fast = {"WARROOM_RELOAD_POLL_SECONDS": "0.3"}
    worker_log = tmp_path / "worker.log"
    common: dict[str, Any] = {"database_url": database_url, "config": org_file, "extra_env": fast}
    with (
        ServerProcess(data_dir=tmp_path / "a", extra_args=["--no-worker"], **common) as first,
        ServerProcess(data_dir=tmp_path / "b", extra_args=["--no-worker"], **common) as second,
        worker_log.open("wb") as log,
    ):
        worker = subprocess.Popen(
            worker_command(org_file, database_url),
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **fast},
        )
        try:
            wait_until(lambda: "worker " in worker_log.read_text(), timeout=30)
            on_second = f"{second.url}/api/v1/alerts/webhook/ci?key={key}"
            assert httpx.post(on_second, json={"pipeline": "nightly"}).status_code == 404
            write_org(org_file, webhook_formats=[CI_FORMAT])
            done = run_cli("config", "reload", env={**env, "WARROOM_URL": first.url, "WARROOM_TOKEN": admin})
            assert "reloaded" in done.stdout
            wait_until(
                lambda: httpx.post(on_second, json={"pipeline": "nightly"}).status_code == 202, timeout=15
            )
            assert "a reload was announced" in second.log_path.read_text()
            wait_until(lambda: "1 webhook format," in worker_log.read_text(), timeout=15)
            assert "a reload was announced" not in first.log_path.read_text()  # it did its own
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def refused_problems(api: TestClient, admin: dict[str, str], query: str = "") -> list[dict[str, Any]]:
    refused = api.post(f"/api/v1/config/reload{query}", headers=admin)
    assert refused.status_code == 422, refused.text
    problems: list[dict[str, Any]] = refused.json()["error"]["details"]
    return problems


def test_an_empty_file_or_a_key_given_twice_is_refused(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    """Either ran as a file without rules: every alert unrouted, nobody paged, and the reload said ok."""
    rules = len(context.org.automation.rules)
    good = org_file.read_text()
    for empty in ("", "# nothing yet\n", "---\n"):
        org_file.write_text(empty)
        (problem,) = refused_problems(api, admin)
        assert problem["location"] == "(file)" and problem["message"].startswith("the file is empty")
    org_file.write_text(good + "automation:\n  mode: first\n")
    (problem,) = refused_problems(api, admin)
    assert (problem["location"], problem["line"]) == ("automation", good.count("\n") + 1)
    assert problem["message"].startswith("duplicate key 'automation' (column 1): already given at line ")
    assert len(context.org.automation.rules) == rules  # the running file stays


def test_a_file_that_routes_nothing_replaces_one_that_does_only_when_forced(
    api: TestClient,
    context: AppContext,
    settings: Settings,
    org_file: Path,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from warroom.db import Database

    other = AppContext(
        settings=settings, db=Database(settings.resolved_database_url), org=load_org_config(org_file)
    )
    try:
        other.reloads_seen = reload.latest_reload(other)
        running = reload.pages_and_routes(context.org)
        automation = context.org.automation
        org_file.write_text("organization: Acme Cloud\n")
        (problem,) = refused_problems(api, admin)
        assert problem["location"] == "(file)"
        assert problem["message"] == (
            "it has no services, escalation policies, automation rules, webhook formats or heartbeats, "
            f"where the running file has {', '.join(running)}, {len(automation.webhook_formats)} webhook "
            f"formats and {len(automation.heartbeats)} heartbeats (a truncated file, a half-finished edit?): "
            "incidents opened from alerts would name no service, nobody would be paged, every alert would "
            "go unrouted, webhook deliveries in those formats would be refused (404) and missed heartbeats "
            "would no longer alert (their pings refused, 404); if that is meant, reload with 'warroom config "
            "reload --force' (POST /api/v1/config/reload?force=true)"
        )
        assert reload.pages_and_routes(context.org) == running
        reload.reload_logged(context)  # kill -HUP: refused too, and logged
        assert "not reloaded, the running one stays" in caplog.text and "--force" in caplog.text
        assert reload.pages_and_routes(context.org) == running

        forced = api.post("/api/v1/config/reload?force=true", headers=admin)
        assert forced.status_code == 200, forced.text
        assert reload.pages_and_routes(context.org) == []
        warnings = forced.json()["warnings"]
        assert "it has no automation rules, where the running file has " in " ".join(warnings)
        assert all(w in caplog.text for w in warnings)
        # The others follow it forced, as this process took it.
        assert reload.follow_announced(other) is True
        assert reload.pages_and_routes(other.org) == []
        # Nothing is lost by reloading it again: no force needed.
        assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
        write_org(org_file)
        assert api.post("/api/v1/config/reload", headers=admin).json()["warnings"] == []
        assert reload.pages_and_routes(context.org) == running
    finally:
        other.db.dispose()


def test_a_file_cut_off_before_automation_is_refused_unless_forced(
    api: TestClient,
    context: AppContext,
    settings: Settings,
    org_file: Path,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """QA: a file cut off before ``automation:`` kept its services and policies, so it was taken with only
    warnings: every alert unrouted, webhook formats gone (404), inhibit rules dropped. Losing any guarded
    section is enough, and each one lost is named."""
    from warroom.db import Database

    text = EXAMPLE_CONFIG.read_text()  # in its own order: automation last
    automation = context.org.automation
    rules, formats_, heartbeats = (
        len(automation.rules),
        len(automation.webhook_formats),
        len(automation.heartbeats),
    )
    other = AppContext(
        settings=settings, db=Database(settings.resolved_database_url), org=load_org_config(org_file)
    )
    try:
        other.reloads_seen = reload.latest_reload(other)
        org_file.write_text(text[: text.index("\nautomation:") + 1])
        (problem,) = refused_problems(api, admin)
        assert problem["location"] == "(file)"
        assert problem["message"] == (
            f"it has no automation rules, webhook formats or heartbeats, where the running file has {rules} "
            f"automation rules, {formats_} webhook formats and {heartbeats} heartbeats (a truncated file, a "
            "half-finished edit?): every alert would go unrouted, webhook deliveries in those formats would "
            "be refused (404) and missed heartbeats would no longer alert (their pings refused, 404); if "
            "that is meant, reload with 'warroom config reload --force' "
            "(POST /api/v1/config/reload?force=true)"
        )
        assert len(context.org.automation.rules) == rules
        reload.reload_logged(context)  # kill -HUP: refused too
        assert "not reloaded, the running one stays" in caplog.text
        # A reload another process announced unforced is refused here too, from this process's file.
        reload.announce(context, "tester")
        assert reload.follow_announced(other) is True
        assert len(other.org.automation.rules) == rules

        # One section is enough: a file whose webhook formats were all cut.
        write_org(org_file, webhook_formats=[])
        (problem,) = refused_problems(api, admin)
        assert problem["message"].startswith(
            f"it has no webhook formats, where the running file has {formats_} webhook formats (a truncated "
            "file, a half-finished edit?): webhook deliveries in those formats would be refused (404); if "
        )
        assert len(context.org.automation.webhook_formats) == formats_
        # Inhibit rules all removed is a warning only.
        write_org(org_file, inhibit_rules=[])
        taken = api.post("/api/v1/config/reload", headers=admin)
        assert taken.status_code == 200, taken.text
        inhibit = len(automation.inhibit_rules)
        assert taken.json()["warnings"] == [f"it has no inhibit rules, where the running file has {inhibit}"]

        org_file.write_text(text[: text.index("\nautomation:") + 1])
        forced = api.post("/api/v1/config/reload?force=true", headers=admin)
        assert forced.status_code == 200, forced.text
        assert context.org.automation.rules == [] and context.org.automation.webhook_formats == []
        assert set(forced.json()["warnings"]) >= {
            f"it has no automation rules, where the running file has {rules}",
            f"it has no webhook formats, where the running file has {formats_}",
            f"it has no heartbeats, where the running file has {heartbeats}",
            # Sections that route or reshape alerts without paging: warned of, with their counts (QA: a file
            # that lost its enrichment, which maps namespaces to services, was taken without a word).
            f"it has no enrichment entries, where the running file has {len(automation.enrich)}",
            f"it has no email rules, where the running file has {len(automation.email_rules)}",
        }
    finally:
        other.db.dispose()


def test_a_reload_names_the_incidents_escalating_on_a_policy_it_drops(
    api: TestClient,
    context: AppContext,
    org_file: Path,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    from warroom.incidents import service as incident_service
    from warroom.incidents.schemas import IncidentCreate
    from warroom.jobs.worker import Worker

    with context.db.write() as session:
        incident = incident_service.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title="API returning 500s", severity="P1", services=["api"]),
            performer="tester",
        )
        ref = incident.ref
    worker = Worker(context, name="w1")
    while worker.run_once():
        pass
    org_file.write_text(org_file.read_text().replace("platform-escalation", "platform-escalation-v2"))
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    warning = (
        "escalation policy 'platform-escalation' is not in the new file but escalates 1 unacknowledged "
        f"incident; at the next deadline, {ref} (P1): platform-escalation-v2 takes over "
        "(the same policy renamed)"
    )
    assert reloaded.json()["warnings"] == [warning]
    assert warning in caplog.text


def two_open_groups(api: TestClient, context: AppContext) -> str:
    """Critical alerts of the queue and cache services: two groups of critical-monitoring, INC-1 and INC-2.
    The generic integration's key they came in with."""
    key = make_key(context, "generic")
    for service in ("queue", "cache"):
        alert = {"summary": "errors", "severity": "critical", "service": service, "dedup_key": service}
        assert api.post(f"/api/v1/alerts?key={key}", json=alert).status_code == 202
    return key


def test_a_reload_names_the_open_incidents_whose_rule_it_drops_or_renames(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    """A group is its rule's name and group-by values: a renamed rule's next alert opens a new incident
    beside the open one. The reload says which incidents stop gathering alerts."""
    key = two_open_groups(api, context)
    unchanged = api.post("/api/v1/config/reload", headers=admin)
    assert unchanged.status_code == 200 and unchanged.json()["warnings"] == [], unchanged.text

    org_file.write_text(org_file.read_text().replace("name: critical-monitoring", "name: critical-alerts"))
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["warnings"] == [
        "rule 'critical-monitoring' is not in the new file but groups alerts into 2 open incidents "
        "(INC-1, INC-2); their next alerts open new incidents instead of joining them "
        "(a renamed rule starts new groups)"
    ]
    # As the warning says: the same group's next alert opens INC-3.
    again = {"summary": "errors", "severity": "critical", "service": "queue", "dedup_key": "queue-2"}
    answer = api.post(f"/api/v1/alerts?key={key}", json=again)
    assert answer.json()["alerts"][0]["incident"] == "INC-3", answer.text


def test_a_reload_moves_heartbeat_deadlines_and_schedule_chains(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    """What the org file changes for entries that already run takes effect at the reload: a heartbeat's new
    interval sets its deadline from its last ping, and a schedule's new rule its next window."""
    t0 = datetime(2026, 3, 2, 11, 22, 39, tzinfo=UTC)
    clock.set(t0)
    key = make_key(context, "heartbeat")
    assert api.post(f"/api/v1/heartbeats/prometheus-watchdog?key={key}").status_code == 200
    nightly = {
        "name": "nightly",
        "rrule": "FREQ=DAILY;BYHOUR=23;BYMINUTE=0",
        "time_zone": "Europe/Berlin",
        "duration": "2h",
        "reason": "nightly batch",
        "services": ["search"],
    }
    write_org(org_file, maintenance_schedules=[nightly])
    assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
    heartbeats = [
        {"name": "prometheus-watchdog", "interval": "1h", "grace": "2m"},
        {"name": "nightly-backup", "interval": "1d", "grace": "2h"},
    ]
    write_org(
        org_file,
        heartbeats=heartbeats,
        maintenance_schedules=[{**nightly, "rrule": "FREQ=DAILY;BYHOUR=21;BYMINUTE=0"}],
    )
    assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
    listed = {h["name"]: h for h in api.get("/api/v1/heartbeats", headers=viewer).json()}
    assert datetime.fromisoformat(listed["prometheus-watchdog"]["due_at"]) == t0 + timedelta(
        hours=1, minutes=2
    )
    with context.db.read() as session:
        waiting = session.scalars(
            select(Job).where(Job.kind == "alerts.maintenance_schedule", Job.status == JobStatus.pending)
        ).all()
    assert [job.payload["starts_at"] for job in waiting] == ["2026-03-02T20:00:00+00:00"]


def test_a_worker_reads_an_announced_reload_before_running_what_it_claims(
    api: TestClient, context: AppContext, settings: Settings, org_file: Path, admin: dict[str, str]
) -> None:
    """A reload through one server adds auto_resolve, and its sweep chain starts at once. A worker in another
    process that has not polled yet claims the sweep: it reads the announced file first, so the sweep runs
    instead of ending the chain ("the org file has no auto_resolve entries")."""
    from warroom.db import Database
    from warroom.jobs.worker import Worker

    worker_settings = settings.model_copy(update={"reload_poll_seconds": 3600.0})  # only catch-up reads it
    other = AppContext(
        settings=worker_settings,
        db=Database(worker_settings.resolved_database_url),
        org=load_org_config(org_file),
    )
    watcher = reload.ReloadWatcher(other)
    watcher.start()
    try:
        write_org(org_file, auto_resolve=[{"match": {"source": ["generic"]}, "after": "4h"}])
        assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
        assert other.org.automation.auto_resolve == []  # it has not looked yet
        assert Worker(other, name="elsewhere").run_once() >= 1
        assert other.org.automation.auto_resolve != []
        with context.db.read() as session:
            sweeps = session.scalars(select(Job).where(Job.kind == SWEEP_KIND).order_by(Job.id)).all()
        assert sweeps[0].status == JobStatus.done and sweeps[0].result == {"resolved": 0}
        assert [job.status for job in sweeps[1:]] == [JobStatus.pending]  # the chain goes on
    finally:
        watcher.stop()
        other.db.dispose()


def test_a_chain_ended_this_minute_starts_again_at_the_next(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    """auto_resolve removed, its sweep ends the chain; put back within the same minute, the chain starts
    again at the next minute instead of finding this minute's run done and starting nothing."""
    from warroom.jobs.worker import Worker

    clock.set(datetime(2026, 3, 2, 10, 0, 5, tzinfo=UTC))
    entries = [{"match": {"source": ["generic"]}, "after": "4h"}]
    write_org(org_file, auto_resolve=entries)
    assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
    write_org(org_file)
    assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
    Worker(context, name="w1").run_once()  # the sweep of 10:00 finds no entries: the chain ends
    clock.set(datetime(2026, 3, 2, 10, 0, 30, tzinfo=UTC))
    write_org(org_file, auto_resolve=entries)
    assert api.post("/api/v1/config/reload", headers=admin).status_code == 200
    with context.db.read() as session:
        pending = session.scalars(
            select(Job).where(Job.kind == SWEEP_KIND, Job.status == JobStatus.pending)
        ).all()
    assert [job.run_at for job in pending] == [datetime(2026, 3, 2, 10, 1, tzinfo=UTC)]


def test_a_reload_names_the_open_incidents_a_new_group_by_splits(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    """A group's key holds its group-by values: with ``automation.group_by`` changed, the next alert of an
    open group opens (and pages) a new incident, so the reload says which incidents stop gathering alerts."""
    key = two_open_groups(api, context)
    org_file.write_text(
        org_file.read_text().replace("group_by:\n  - service\n  - alertname", "group_by:\n  - service")
    )
    assert load_org_config(org_file).automation.group_by == ["service"]
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["warnings"] == [
        "rule 'critical-monitoring' groups alerts into 2 open incidents (INC-1, INC-2) and its group_by "
        "changes from ['service', 'alertname'] to ['service']; their next alerts open new incidents instead "
        "of joining them"
    ]
    # As the warning says: the same alert's next one opens INC-3.
    again = {"summary": "errors", "severity": "critical", "service": "queue", "dedup_key": "queue-2"}
    assert api.post(f"/api/v1/alerts?key={key}", json=again).json()["alerts"][0]["incident"] == "INC-3"


def test_a_reload_names_the_groups_a_rules_own_group_by_or_a_shorter_window_lets_go(
    api: TestClient, context: AppContext, org_file: Path, admin: dict[str, str]
) -> None:
    """A rule's own ``group_by`` splits its groups as the global one does; a shorter ``group_window`` lets go
    of those whose alerts all resolved and were last seen within the old window but not the new one. A group
    with an alert still firing keeps its incident either way, and a rule left as it was is not named."""
    t0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    clock.set(t0)
    key = two_open_groups(api, context)
    resolved = {"summary": "errors", "severity": "critical", "service": "queue", "dedup_key": "queue"}
    assert api.post(f"/api/v1/alerts?key={key}", json={**resolved, "status": "resolved"}).status_code == 202
    clock.set(t0 + timedelta(minutes=20))
    data = yaml.safe_load(org_file.read_text())
    [rule] = [rule for rule in data["automation"]["rules"] if rule["name"] == "critical-monitoring"]
    rule["incident"]["group_window"] = "10m"  # INC-1's group (resolved 20m ago) is let go; INC-2 still fires
    org_file.write_text(yaml.safe_dump(data))
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["warnings"] == [
        "rule 'critical-monitoring' groups alerts into 1 open incident (INC-1) and its group_window shortens "
        "from 1h to 10m; their next alerts open new incidents instead of joining them"
    ]
    rule["incident"]["group_by"] = ["service"]
    org_file.write_text(yaml.safe_dump(data))
    reloaded = api.post("/api/v1/config/reload", headers=admin)
    assert reloaded.json()["warnings"] == [
        "rule 'critical-monitoring' groups alerts into 1 open incident (INC-2) and its group_by changes "
        "from ['service', 'alertname'] to ['service']; their next alerts open new incidents instead of "
        "joining them"
    ]
    assert api.post("/api/v1/config/reload", headers=admin).json()["warnings"] == []
