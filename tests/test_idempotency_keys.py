"""A POST sent again with its Idempotency-Key is carried out once: the retry gets the first one's answer."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tests.conftest import bearer, cli_through_the_app
from warroom.alerts import retention
from warroom.auth import idempotency
from warroom.auth import service as auth_service
from warroom.auth.models import IdempotentRequest
from warroom.cli.main import app as cli
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents.models import Communication, TimelineEntry

UPDATE = {"message": "Payments recovered; watching error rates", "audience": "internal"}


def declare(api: TestClient, responder: dict[str, str]) -> str:
    created = api.post(
        "/api/v1/incidents", json={"title": "Checkout errors", "severity": "P2"}, headers=responder
    )
    assert created.status_code == 201, created.text
    return f"INC-{created.json()['number']}"


def counts(context: AppContext, ref: str) -> tuple[int, int]:
    """Updates sent and timeline entries of the incident."""
    with context.db.read() as session:
        number = int(ref.split("-")[1])  # an incident's number is its id
        updates = session.scalar(
            select(func.count()).select_from(Communication).where(Communication.incident_id == number)
        )
        entries = session.scalar(
            select(func.count()).select_from(TimelineEntry).where(TimelineEntry.incident_id == number)
        )
    return updates or 0, entries or 0


def test_the_same_key_sends_the_update_once_and_answers_the_retry_alike(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    ref = declare(api, responder)
    before = counts(context, ref)
    keyed = {**responder, "Idempotency-Key": "5f0c1c9e-update-1"}
    first = api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    again = api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed)
    assert again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert counts(context, ref) == (before[0] + 1, before[1] + 1)

    # Without a key (or with a new one) it is a new update, as before.
    assert api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=responder).status_code == 201
    fresh = {**responder, "Idempotency-Key": "5f0c1c9e-update-2"}
    assert api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=fresh).status_code == 201
    assert counts(context, ref)[0] == before[0] + 3


def test_a_key_is_the_callers_own_and_names_one_request(
    api: TestClient, context: AppContext, responder: dict[str, str], admin: dict[str, str]
) -> None:
    ref = declare(api, responder)
    key = {"Idempotency-Key": "note-7"}
    note = {"kind": "note", "action": "Rolled back 4.2.1"}
    assert (
        api.post(f"/api/v1/incidents/{ref}/timeline", json=note, headers={**responder, **key}).status_code
        == 201
    )
    before = counts(context, ref)

    other = api.post(
        f"/api/v1/incidents/{ref}/timeline",
        json={**note, "action": "Something else"},
        headers={**responder, **key},
    )
    assert other.status_code == 422, other.text
    assert other.json()["error"]["code"] == "idempotency_key_reused"
    assert "use a new key for a new request" in other.json()["error"]["message"]
    assert counts(context, ref) == before

    # Another caller's key of the same name is theirs: carried out.
    theirs = api.post(f"/api/v1/incidents/{ref}/timeline", json=note, headers={**admin, **key})
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
def test_a_malformed_key_is_refused_and_nothing_is_done(
    api: TestClient, context: AppContext, responder: dict[str, str], key: str
) -> None:
    ref = declare(api, responder)
    before = counts(context, ref)
    refused = api.post(
        f"/api/v1/incidents/{ref}/updates",
        json=UPDATE,
        headers={**responder, "Idempotency-Key": key.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["code"] == "invalid_idempotency_key"
    assert counts(context, ref) == before


def test_a_refused_request_records_no_key_so_its_corrected_retry_runs(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    ref = declare(api, responder)
    keyed = {**responder, "Idempotency-Key": "k-refused"}
    refused = api.post(
        f"/api/v1/incidents/{ref}/updates", json={**UPDATE, "audience": "nobody"}, headers=keyed
    )
    assert refused.status_code in (400, 404, 422), refused.text
    with context.db.read() as session:
        assert session.scalar(select(func.count()).select_from(IdempotentRequest)) == 0
    # The same key with the same (still wrong) request runs again: refused again, not replayed.
    assert (
        "idempotent-replayed"
        not in api.post(
            f"/api/v1/incidents/{ref}/updates", json={**UPDATE, "audience": "nobody"}, headers=keyed
        ).headers
    )


def test_a_write_whose_answer_was_not_kept_is_said_to_be_done(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """The server stopped between committing the write and keeping its answer: a retry is told the write
    was carried out, and is not carried out again."""
    ref = declare(api, responder)
    keyed = {**responder, "Idempotency-Key": "k-crash"}
    assert api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed).status_code == 201
    with context.db.write() as session:
        session.execute(update(IdempotentRequest).values(status_code=None, response=None))
    before = counts(context, ref)
    retried = api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed)
    assert retried.status_code == 409, retried.text
    assert retried.json()["error"]["code"] == "idempotency_key_in_use"
    assert "was carried out at" in retried.json()["error"]["message"]
    assert counts(context, ref) == before


def test_two_at_once_with_one_key_write_once(
    api: TestClient, context: AppContext, responder: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The retry looked for the key before the first committed (so found nothing) and ran: its commit finds
    the key taken, and its whole write is rolled back."""
    ref = declare(api, responder)
    keyed = {**responder, "Idempotency-Key": "k-race"}
    assert api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed).status_code == 201
    before = counts(context, ref)
    monkeypatch.setattr(idempotency, "find", lambda *_: None)  # the lookup happened before that commit
    second = api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed)
    assert second.status_code == 409, second.text
    assert second.json()["error"]["code"] == "idempotency_key_in_use"
    assert "send it again to get that one's answer" in second.json()["error"]["message"]
    assert counts(context, ref) == before
    monkeypatch.undo()
    assert (
        api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed).headers[
            "idempotent-replayed"
        ]
        == "true"
    )


def test_the_cli_sends_a_post_again_after_no_answer_and_it_is_made_once(
    api: TestClient, context: AppContext, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first answer is lost on the way back (a proxy's timeout): the CLI sends the update again with
    the same key, gets the first one's answer, and reports success; one update went out."""
    ref = declare(api, bearer(tokens["responder"]))
    before = counts(context, ref)
    sent: list[dict[str, Any]] = []

    def lossy(request: httpx.Request) -> httpx.Response:
        answer = api.request(
            request.method, request.url.raw_path.decode(), headers=request.headers, content=request.content
        )
        sent.append({"method": request.method, "key": request.headers.get("idempotency-key")})
        if request.method == "POST" and len(sent) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    from warroom.client import Client

    monkeypatch.setattr("warroom.client.RETRY_PAUSE", 0)
    monkeypatch.setattr(
        "warroom.cli.incidents.Client",
        lambda: Client("http://warroom.test", tokens["responder"], transport=httpx.MockTransport(lossy)),
    )
    result = cli_through_the_app(api, tokens["responder"], monkeypatch).invoke(
        cli, ["incident", "send-update", ref, "Payments recovered", "--audience", "internal"]
    )
    assert result.exit_code == 0, result.output
    posts = [each for each in sent if each["method"] == "POST"]
    assert len(posts) == 2 and posts[0]["key"] and posts[0]["key"] == posts[1]["key"]
    assert counts(context, ref) == (before[0] + 1, before[1] + 1)


def test_the_retention_job_forgets_keys_after_a_day(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    ref = declare(api, responder)
    keyed = {**responder, "Idempotency-Key": "k-old"}
    assert api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed).status_code == 201
    assert retention.prune(context, clock.now())["idempotent_requests"] == 0
    later = clock.now() + idempotency.KEEP_FOR + timedelta(minutes=1)
    clock.set(later)  # a day on, not pruned yet: still the same request's key
    again = api.post(f"/api/v1/incidents/{ref}/updates", json=UPDATE, headers=keyed)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true", again.text
    assert retention.prune(context, later)["idempotent_requests"] == 1


def test_an_answer_holding_a_secret_is_never_kept(
    api: TestClient, context: AppContext, admin: dict[str, str]
) -> None:
    """A new token's or integration key's secret is shown once; only its hash is stored, and the kept answer
    must not store it either. A retry learns that the write was made, and where to find what it made."""
    keyed = {**admin, "Idempotency-Key": "k-token"}
    created = api.post("/api/v1/tokens", json={"name": "ci-bot", "role": "viewer"}, headers=keyed)
    assert created.status_code == 201, created.text
    secret = created.json()["token"]
    integration = api.post(
        "/api/v1/integrations",
        json={"name": "prom", "type": "alertmanager"},
        headers={**admin, "Idempotency-Key": "k-integration"},
    )
    assert integration.status_code == 201, integration.text
    key = integration.json()["key"]
    rotated = api.post(
        f"/api/v1/integrations/{integration.json()['id']}/rotate",
        headers={**admin, "Idempotency-Key": "k-rotate"},
    )
    assert rotated.status_code == 200, rotated.text
    with context.db.read() as session:
        kept = session.scalars(select(IdempotentRequest)).all()
    assert len(kept) == 3
    for row in kept:
        stored = bytes(row.response or b"")
        assert secret.encode() not in stored and key.encode() not in stored
        assert rotated.json()["key"].encode() not in stored
    again = api.post("/api/v1/tokens", json={"name": "ci-bot", "role": "viewer"}, headers=keyed)
    assert again.status_code == 409, again.text
    assert "held a secret that is shown once and not kept" in again.json()["error"]["message"]
    with context.db.read() as session:  # and it was not made twice
        assert len([t for t in auth_service.list_tokens(session) if t.name == "ci-bot"]) == 1


def test_a_retry_that_finds_its_write_made_but_no_answer_says_it_was_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first POST got no answer; every retry hears "carried out, answer not at hand" (409): the change was
    made, and the client says so instead of "refused" (a script rerunning would make it twice)."""
    from warroom.client import ApiError, Client

    monkeypatch.setattr("warroom.client.RETRY_PAUSE", 0)
    calls: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("idempotency-key"))
        if len(calls) == 1:
            raise httpx.ReadTimeout("timed out", request=request)
        body = {
            "error": {"code": "idempotency_key_in_use", "message": "carried out at 12:00", "details": None}
        }
        return httpx.Response(409, json=body)

    client = Client("http://warroom.test", "wr_token", transport=httpx.MockTransport(server))
    with pytest.raises(ApiError) as raised:
        client.request("POST", "/api/v1/incidents", json={"title": "x", "severity": "P3"})
    assert raised.value.code == "no_answer"
    assert "the server made the change" in str(raised.value) and "carried out at 12:00" in str(raised.value)
    assert len(calls) == 5 and len(set(calls)) == 1  # the first, one retry, three asks for the answer
