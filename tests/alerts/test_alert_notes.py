"""Notes on alerts: what a responder found, kept with the alert and put on its incident's timeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.conftest import EXAMPLE_CONFIG
from tests.e2e.server import run_cli, serve_for_cli
from warroom.alerts import retention
from warroom.alerts.models import AlertNote
from warroom.auth import service as auth_service
from warroom.auth.models import Role
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import TimelineEntry


def fire(api: TestClient, key: str, **alert: Any) -> int:
    answer = api.post(f"/api/v1/alerts?key={key}", json={"severity": "info", **alert})
    assert answer.status_code == 202, answer.text
    alert_id: int = answer.json()["alerts"][0]["id"]
    return alert_id


def note(api: TestClient, ref: int | str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return api.post(f"/api/v1/alerts/{ref}/notes", json={"body": body}, headers=headers)


def stored_notes(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(AlertNote)) or 0


def test_notes_stay_with_the_alert_in_order(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    alert_id = fire(api, generic_key, summary="disk 81% on db-2", dedup_key="disk")
    first = note(api, alert_id, "  Known: the nightly vacuum. Ticket OPS-812.  ", responder)
    assert first.status_code == 201, first.text
    assert first.json()["incident"] is None  # unrouted: the alert itself is the only record
    note(api, f"ALR-{alert_id}", "Still growing after the vacuum; looking.", responder)

    shown = api.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()
    assert [(n["author"], n["body"]) for n in shown["notes"]] == [
        ("responder-user", "Known: the nightly vacuum. Ticket OPS-812."),
        ("responder-user", "Still growing after the vacuum; looking."),
    ]
    # Firing again changes nothing about them.
    fire(api, generic_key, summary="disk 83% on db-2", dedup_key="disk")
    assert len(api.get(f"/api/v1/alerts/{alert_id}", headers=viewer).json()["notes"]) == 2


def test_a_note_on_an_alert_of_an_incident_goes_on_its_timeline(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    alert_id = fire(
        api, generic_key, summary="charges failing", severity="critical", labels={"service": "payments"}
    )
    noted = note(api, alert_id, "PSP returns 503 for EU cards only", responder)
    assert noted.status_code == 201 and noted.json()["incident"] == "INC-1"
    with context.db.read() as session:
        entry = session.scalars(select(TimelineEntry).order_by(TimelineEntry.id.desc())).first()
        assert entry is not None
        assert (entry.performer, entry.kind) == ("responder-user", "note")
        assert entry.action == f"Note on alert ALR-{alert_id}: PSP returns 503 for EU cards only"


def incident_notes(context: AppContext, incident_id: int) -> list[tuple[str, str]]:
    with context.db.read() as session:
        entries = session.scalars(
            select(TimelineEntry)
            .where(TimelineEntry.incident_id == incident_id, TimelineEntry.kind == "note")
            .order_by(TimelineEntry.seq)
        )
        return [(entry.performer, entry.action) for entry in entries]


def test_notes_written_before_follow_the_alert_onto_its_incident(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    admin: dict[str, str],
) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    disk = fire(api, generic_key, summary="disk 81% on db-2", dedup_key="disk")
    note(api, disk, "Known: the nightly vacuum.", responder)
    clock.set(datetime(2026, 3, 2, 10, 20, tzinfo=UTC))
    note(api, disk, "Not the vacuum after all: WAL is piling up.", admin)
    promoted = api.post(f"/api/v1/alerts/{disk}/promote", headers=responder)
    assert promoted.status_code == 201, promoted.text
    assert incident_notes(context, 1) == [
        (
            "responder-user",
            f"Note on alert ALR-{disk} (written 2026-03-02 10:00 UTC, before it joined INC-1): Known: the "
            "nightly vacuum.",
        ),
        (
            "admin-user",
            f"Note on alert ALR-{disk} (written 2026-03-02 10:20 UTC, before it joined INC-1): Not the "
            "vacuum after all: WAL is piling up.",
        ),
    ]
    with context.db.read() as session:
        kinds = [
            entry.kind
            for entry in session.scalars(
                select(TimelineEntry).where(TimelineEntry.incident_id == 1).order_by(TimelineEntry.seq)
            )
        ]
    assert kinds[-3:] == ["alert", "note", "note"]  # right after the line that attaches the alert

    # Attached by hand, another alert brings its note; a note written afterwards goes on once.
    replica = fire(api, generic_key, summary="replica lag 40s on db-3", dedup_key="lag")
    note(api, replica, "db-3 replays the same WAL", responder)
    attached = api.post(f"/api/v1/alerts/{replica}/attach", json={"incident": "INC-1"}, headers=responder)
    assert attached.status_code == 200, attached.text
    note(api, replica, "lag falling", responder)
    assert [action for _, action in incident_notes(context, 1)][2:] == [
        f"Note on alert ALR-{replica} (written 2026-03-02 10:20 UTC, before it joined INC-1): db-3 replays "
        "the same WAL",
        f"Note on alert ALR-{replica}: lag falling",
    ]


def test_notes_on_an_alert_held_by_maintenance_reach_the_incident_it_opens_at_the_end(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    window = api.post(
        "/api/v1/maintenance",
        json={"reason": "api deploy", "services": ["api"], "duration": "1h"},
        headers=responder,
    )
    assert window.status_code == 201, window.text
    held = fire(api, generic_key, summary="api 5xx", severity="critical", service="api", dedup_key="5xx")
    note(api, held, "expected while the old pods drain", responder)
    assert incident_notes(context, 1) == []
    ended = api.post("/api/v1/maintenance/MW-1/end", headers=responder)
    assert ended.status_code == 200, ended.text
    shown = api.get(f"/api/v1/alerts/{held}", headers=responder).json()
    assert shown["incident"] == "INC-1"
    assert incident_notes(context, 1) == [
        (
            "responder-user",
            f"Note on alert ALR-{held} (written 2026-03-02 10:00 UTC, before it joined INC-1): expected "
            "while the old pods drain",
        )
    ]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"body": "   "}, 422),
        ({"body": ""}, 422),
        ({}, 422),
        ({"body": None}, 422),
        ({"body": "x" * 4001}, 422),
        ({"body": "ok", "author": "someone else"}, 422),  # the author is the token's
    ],
)
def test_bad_notes_are_refused_and_store_nothing(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    body: dict[str, Any],
    status: int,
) -> None:
    alert_id = fire(api, generic_key, summary="x")
    answer = api.post(f"/api/v1/alerts/{alert_id}/notes", json=body, headers=responder)
    assert answer.status_code == status, answer.text
    assert stored_notes(context) == 0


def test_notes_need_a_responder_and_an_alert(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    alert_id = fire(api, generic_key, summary="x")
    assert note(api, alert_id, "hi", viewer).status_code == 403
    assert api.post(f"/api/v1/alerts/{alert_id}/notes", json={"body": "hi"}).status_code == 401
    assert note(api, 999, "hi", responder).status_code == 404
    assert note(api, "ALR-x", "hi", responder).status_code in (404, 422)
    assert stored_notes(context) == 0


def test_retention_deletes_the_notes_with_their_alert(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str]
) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    alert_id = fire(api, generic_key, summary="disk 81%", dedup_key="old")
    assert note(api, alert_id, "the vacuum", responder).status_code == 201
    fire(api, generic_key, summary="disk 81%", dedup_key="old", status="resolved")
    clock.set(clock.now() + timedelta(days=91))
    assert retention.prune(context, clock.now())["alerts"] == 1
    assert stored_notes(context) == 0


@pytest.mark.e2e
def test_cli_notes_and_shows_them(tmp_path: Path) -> None:
    with serve_for_cli(EXAMPLE_CONFIG, tmp_path, token_name="night-shift", role="responder") as env:
        reported = run_cli("report", "Search index is a day old", "--service", "search", "--json", env=env)
        ref = f"ALR-{json.loads(reported.stdout)['id']}"
        noted = run_cli("alerts", "note", ref, "-m", "Indexer stuck on a poison document", env=env)
        assert f"{ref} noted" in noted.stdout
        shown = run_cli("alerts", "show", ref, env={**env, "COLUMNS": "200"}).stdout
        assert "Notes" in shown and "night-shift" in shown and "Indexer stuck on a poison document" in shown
        blank = run_cli("alerts", "note", ref, "-m", "  ", env=env, check=False)
        assert blank.returncode == 2 and "--message must not be blank" in blank.stderr
        missing = run_cli("alerts", "note", "ALR-999", "-m", "x", env=env, check=False)
        assert missing.returncode == 1 and "ALR-999" in missing.stderr
        corrected = run_cli("alerts", "note", ref, "--edit", "1", "-m", "Indexer stuck on doc 42", env=env)
        assert f"{ref} note corrected" in corrected.stdout
        shown = run_cli("alerts", "show", ref, env={**env, "COLUMNS": "200"}).stdout
        assert "Indexer stuck on doc 42" in shown and "edited" in shown
        both = run_cli("alerts", "note", ref, "--edit", "1", "--delete", "1", env=env, check=False)
        assert both.returncode == 2 and "not both" in both.stderr
        taken = run_cli("alerts", "note", ref, "--delete", "1", env=env)
        assert f"{ref} note taken back" in taken.stdout


def test_the_author_or_an_admin_corrects_or_takes_back_a_note(
    api: TestClient, context: AppContext, generic_key: str, responder: dict[str, str], admin: dict[str, str]
) -> None:
    alert_id = fire(
        api, generic_key, summary="charges failing", severity="critical", labels={"service": "payments"}
    )
    note_id = note(api, alert_id, "PSP returns 503 for US cards", responder).json()["notes"][0]["id"]
    with context.db.write() as session:
        other = auth_service.create_token(session, name="someone-else", role=Role.responder).token
    url = f"/api/v1/alerts/ALR-{alert_id}/notes/{note_id}"
    # Another responder may not; bad input and unknown notes change nothing either.
    assert api.patch(url, json={"body": "x"}, headers={"Authorization": f"Bearer {other}"}).status_code == 403
    assert api.delete(url, headers={"Authorization": f"Bearer {other}"}).status_code == 403
    assert api.patch(url, json={"body": "   "}, headers=responder).status_code == 422
    assert api.patch(url, json={}, headers=responder).status_code == 422
    assert (
        api.patch(
            f"/api/v1/alerts/ALR-{alert_id}/notes/999", json={"body": "x"}, headers=responder
        ).status_code
        == 404
    )
    assert api.delete(f"/api/v1/alerts/ALR-{alert_id}/notes/0", headers=responder).status_code == 422
    # The author corrects it; the timeline keeps both versions (it is append-only).
    corrected = api.patch(url, json={"body": "PSP returns 503 for EU cards"}, headers=responder)
    assert corrected.status_code == 200, corrected.text
    [shown] = corrected.json()["notes"]
    assert shown["body"] == "PSP returns 503 for EU cards" and shown["edited_at"] is not None
    # An admin takes it back.
    taken = api.delete(url, headers=admin)
    assert taken.status_code == 200 and taken.json()["notes"] == []
    assert stored_notes(context) == 0
    with context.db.read() as session:
        actions = [
            e.action for e in session.scalars(select(TimelineEntry).where(TimelineEntry.kind == "note"))
        ]
    assert actions == [
        f"Note on alert ALR-{alert_id}: PSP returns 503 for US cards",
        f"Note {note_id} on alert ALR-{alert_id} corrected: PSP returns 503 for EU cards",
        f"Note {note_id} on alert ALR-{alert_id} taken back by admin-user",
    ]
