"""A request that finds its incident merged into another is refused naming that merge, as an acknowledgement
is ("INC-4 was merged into INC-3: acknowledge INC-3"). Before, the loser of two merges of one incident got
"INC-48 is resolved: only an open incident is merged" without INC-50, and a PATCH of a merged incident's
severity or services answered 200, changing only the resolved duplicate (a raise there paged nobody)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.incidents.test_api import create


def merge(api: TestClient, headers: dict[str, str], ref: str, into: str) -> Any:
    return api.post(f"/api/v1/incidents/{ref}/merge", json={"into": into}, headers=headers)


def error(answer: Any) -> dict[str, Any]:
    assert answer.status_code == 409, answer.text
    said: dict[str, Any] = answer.json()["error"]
    return said


def test_the_loser_of_two_merges_names_the_merge_that_won(api: TestClient, responder: dict[str, str]) -> None:
    source, first, second = (create(api, responder)["id"] for _ in range(3))
    assert merge(api, responder, source, second).status_code == 200  # the one that got the lock first

    lost = error(merge(api, responder, source, first))
    assert lost["message"] == f"{source} was merged into {second}: only an open incident is merged"
    assert lost["details"][0]["merged_into"] == second
    # Into it, the same: its alerts and pages are on the incident it went into.
    other = create(api, responder)["id"]
    into_merged = error(merge(api, responder, other, source))
    assert (
        into_merged["message"] == f"{source} was merged into {second}: only an open incident is merged into"
    )
    # A plain resolved incident is refused as before.
    api.patch(f"/api/v1/incidents/{first}", json={"status": "resolved"}, headers=responder)
    plain = error(merge(api, responder, other, first))
    assert plain["message"] == f"{first} is resolved: only an open incident is merged into"


def test_a_change_of_a_merged_incidents_response_is_refused_naming_where_it_went(
    api: TestClient, responder: dict[str, str]
) -> None:
    target = create(api, responder, severity="P2")["id"]
    merged = create(api, responder, severity="P2")["id"]
    assert merge(api, responder, merged, target).status_code == 200

    raised = error(api.patch(f"/api/v1/incidents/{merged}", json={"severity": "P0"}, headers=responder))
    assert raised["message"] == (
        f"{merged} was merged into {target}: set the severity on {target} (or reopen {merged} first)"
    )
    assert raised["details"][0]["merged_into"] == target
    both = {"services": ["payments"], "commander": "carol"}
    moved = error(api.patch(f"/api/v1/incidents/{merged}", json=both, headers=responder))
    assert moved["message"] == (
        f"{merged} was merged into {target}: set the services and commander on {target} (or reopen {merged} "
        "first)"
    )
    shown = api.get(f"/api/v1/incidents/{merged}", headers=responder).json()
    assert (shown["severity"], shown["services"]) == ("P2", ["api"])  # nothing changed

    # Its own record is still its own to keep, and a reopen (which ends the merge) may come with a raise.
    titled = api.patch(f"/api/v1/incidents/{merged}", json={"title": "Duplicate of INC"}, headers=responder)
    assert titled.status_code == 200, titled.text
    reopened = api.patch(
        f"/api/v1/incidents/{merged}", json={"status": "investigating", "severity": "P0"}, headers=responder
    )
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["severity"] == "P0"
