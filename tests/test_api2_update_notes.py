"""An incident update's note (``--note``: "Why; goes on the timeline") reaches the timeline whatever the
update changed: it was kept only with a status or severity change, and dropped silently otherwise (a rename,
a hand-over, a status it had already, a second resolve by a retrying cron job)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient

from warroom.context import AppContext
from warroom.incidents import service as incident_service


def declare(api: TestClient, responder: dict[str, str]) -> str:
    created = api.post(
        "/api/v1/incidents", json={"title": "Checkout errors", "severity": "P2"}, headers=responder
    )
    assert created.status_code == 201, created.text
    ref: str = created.json()["id"]
    return ref


def timeline(api: TestClient, ref: str, viewer: dict[str, str]) -> list[dict[str, Any]]:
    answer = api.get(f"/api/v1/incidents/{ref}/timeline", headers=viewer)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["items"]
    return entries


def update(api: TestClient, ref: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    answer = api.patch(f"/api/v1/incidents/{ref}", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    incident: dict[str, Any] = answer.json()
    return incident


def test_a_note_goes_on_the_entry_of_each_change_it_explains(
    api: TestClient, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    ref = declare(api, responder)
    update(api, ref, responder, title="Checkout errors in EU", note="narrowed down")
    update(api, ref, responder, commander="Alice Chen", note="handoff")
    update(api, ref, responder, services=["payments"], is_private=True, note="payments only, customer data")
    update(api, ref, responder, summary="Card payments fail", note="for the exec brief")
    entries = timeline(api, ref, viewer)
    actions = [entry["action"] for entry in entries[1:]]
    assert actions == [
        "Title changed to 'Checkout errors in EU' — narrowed down",
        "Alice Chen is incident commander — handoff",
        "Marked private — payments only, customer data",
        "Affected services: payments — payments only, customer data",
        "Summary updated — for the exec brief",
    ], actions
    # As before: a status change carries it too, once.
    update(api, ref, responder, status="identified", note="pool exhausted")
    assert timeline(api, ref, viewer)[-1]["action"] == "Status: investigating → identified — pool exhausted"


def test_a_note_with_nothing_changed_is_kept_and_says_so(
    api: TestClient, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    ref = declare(api, responder)
    before = len(timeline(api, ref, viewer))
    update(api, ref, responder, status="investigating", note="db checked")
    update(api, ref, responder, commander="Alice Chen")
    update(api, ref, responder, commander="Alice Chen", title="Checkout errors", note="still mine")
    update(api, ref, responder, note="a note alone")
    entries = timeline(api, ref, viewer)[before:]
    assert [(entry["kind"], entry["action"]) for entry in entries] == [
        ("note", f"db checked (nothing changed: {ref} was investigating already)"),
        ("commander_change", "Alice Chen is incident commander"),
        (
            "note",
            "still mine (nothing changed: the title was 'Checkout errors' already; Alice Chen was commander "
            "already)",
        ),
        ("note", "a note alone"),
    ]
    assert entries[0]["data"] == {"note": "db checked", "unchanged": ["status"]}
    # Nothing at all to do is still refused, and writes nothing.
    empty = api.patch(f"/api/v1/incidents/{ref}", json={}, headers=responder)
    assert empty.status_code == 422, empty.text
    blank = api.patch(f"/api/v1/incidents/{ref}", json={"note": ""}, headers=responder)
    assert blank.status_code == 422, blank.text
    assert len(timeline(api, ref, viewer)) == before + len(entries)


def test_every_resolve_of_a_retrying_job_keeps_its_note(
    api: TestClient, context: AppContext, responder: dict[str, str], viewer: dict[str, str]
) -> None:
    """Four cron jobs resolving at once: all answered 200, one note was kept. Each waits for the incident's
    row lock (PostgreSQL) or the write lock (SQLite), then finds it resolved: its note goes on as a note."""
    ref = declare(api, responder)

    def resolve(run: int) -> int:
        answer = api.patch(
            f"/api/v1/incidents/{ref}", json={"status": "resolved", "note": f"cron {run}"}, headers=responder
        )
        status: int = answer.status_code
        return status

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(resolve, range(4))) == [200] * 4
    entries = timeline(api, ref, viewer)
    resolves = [entry for entry in entries if entry["kind"] == "status_change"]
    notes = [entry for entry in entries if entry["kind"] == "note"]
    assert len(resolves) == 1 and len(notes) == 3, [entry["action"] for entry in entries]
    kept = {resolves[0]["action"].rpartition(" — ")[2]} | {note["data"]["note"] for note in notes}
    assert kept == {f"cron {run}" for run in range(4)}
    assert all(note["action"].endswith(f"(nothing changed: {ref} was resolved already)") for note in notes)
    with context.db.read() as session:
        assert incident_service.verify_timelines(session)[1] == []
