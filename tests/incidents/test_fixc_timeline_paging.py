"""QA: an incident's timeline was answered whole (1 MB for an alert storm's 3,444 entries) and refused
``limit``; ``incident timeline`` printed every entry. It is paged now as the other lists are (``limit`` up to
500, ``offset``), from the newest entry, with ``before_seq``/``after_seq`` cursors; the CLI shows the latest
100 and says how to see the rest. Real SQLite files and PostgreSQL, through the in-process app."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import cli_through_the_app
from tests.incidents.test_api import create
from warroom.cli.main import app as cli_app
from warroom.client import Client
from warroom.context import AppContext
from warroom.incidents import service
from warroom.incidents.schemas import TimelineEntryCreate

ENTRIES = 130  # "created" and the severity's reason, then logged actions


@pytest.fixture
def ref(context: AppContext, api: TestClient, responder: dict[str, str]) -> str:
    ref: str = create(api, responder)["id"]
    with context.db.write() as session:
        count = service.get_incident(session, ref).timeline_count
        for number in range(count + 1, ENTRIES + 1):
            service.log_action(
                session, ref=ref, entry=TimelineEntryCreate(action=f"step {number}"), performer="tester"
            )
    return ref


@pytest.fixture
def cli(api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    return cli_through_the_app(api, tokens["viewer"], monkeypatch, "warroom.cli.incidents")


def page(api: TestClient, headers: dict[str, str], ref: str, **params: Any) -> dict[str, Any]:
    answer = api.get(f"/api/v1/incidents/{ref}/timeline", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def seqs(read: dict[str, Any]) -> list[int]:
    return [entry["seq"] for entry in read["items"]]


def test_the_timeline_is_answered_a_page_at_a_time_from_the_newest(
    ref: str, api: TestClient, viewer: dict[str, str]
) -> None:
    newest = page(api, viewer, ref)
    assert (newest["total"], newest["limit"], newest["offset"]) == (ENTRIES, 100, 0)
    assert seqs(newest) == list(range(31, ENTRIES + 1))  # the newest 100, oldest first within the page
    # The page before the first entry shown, and the one before that (what is left: 20 entries).
    before = page(api, viewer, ref, limit=10, before_seq=31)
    assert seqs(before) == list(range(21, 31)) and before["total"] == 30
    # What came after an entry seen, oldest first; its total is what follows it.
    after = page(api, viewer, ref, after_seq=120, limit=5)
    assert seqs(after) == list(range(121, 126)) and after["total"] == 10
    assert seqs(page(api, viewer, ref, after_seq=0, limit=3)) == [1, 2, 3]
    # offset counts from where the page is read: the newest, or the entry after after_seq.
    assert seqs(page(api, viewer, ref, limit=5, offset=10)) == list(range(116, 121))
    assert seqs(page(api, viewer, ref, limit=2, offset=3, after_seq=10)) == [14, 15]
    # Both cursors: the entries between them.
    assert seqs(page(api, viewer, ref, after_seq=40, before_seq=44)) == [41, 42, 43]
    assert page(api, viewer, ref, before_seq=1)["items"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"before_seq": 0}, "before_seq"),
        ({"after_seq": -1}, "after_seq"),
    ],
)
def test_out_of_range_paging_is_refused(
    ref: str, api: TestClient, viewer: dict[str, str], params: dict[str, int], field: str
) -> None:
    answer = api.get(f"/api/v1/incidents/{ref}/timeline", params=params, headers=viewer)
    assert answer.status_code == 422 and field in answer.text


def test_the_client_reads_every_entry_a_page_at_a_time(
    ref: str, api: TestClient, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_through_the_app(api, tokens["viewer"], monkeypatch, "warroom.cli.incidents")
    from warroom.cli import incidents

    client: Client = incidents._client()  # the test app's
    pages = list(client.timeline_entries(ref, page=50))
    assert [len(read.items) for read in pages] == [50, 50, 30]
    assert [entry.seq for read in pages for entry in read.items] == list(range(1, ENTRIES + 1))
    assert [entry.seq for read in client.timeline_entries(ref, after_seq=125) for entry in read.items] == [
        126,
        127,
        128,
        129,
        130,
    ]


def table_seqs(output: str) -> list[int]:
    return [int(found) for found in re.findall(r"^│ +(\d+) +│", output, flags=re.MULTILINE)]


def test_the_cli_shows_the_latest_entries_and_says_how_to_see_the_rest(ref: str, cli: CliRunner) -> None:
    shown = cli.invoke(cli_app, ["incident", "timeline", ref], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert table_seqs(shown.output) == list(range(31, ENTRIES + 1))
    assert f"(100 of {ENTRIES})" in shown.output
    said = " ".join(shown.output.split())
    assert f"30 earlier entries not shown (warroom incident timeline {ref} --before-seq 31)" in said
    assert "--all for every one" in said

    shown = cli.invoke(cli_app, ["incident", "timeline", ref, "--limit", "5", "--before-seq", "31"])
    assert table_seqs(shown.output) == list(range(26, 31))
    assert "25 earlier entries not shown" in " ".join(shown.output.split())

    shown = cli.invoke(cli_app, ["incident", "timeline", ref, "--after-seq", "120", "--limit", "4"])
    assert table_seqs(shown.output) == [121, 122, 123, 124]
    assert f"6 later entries not shown (warroom incident timeline {ref} --after-seq 124)" in " ".join(
        shown.output.split()
    )

    # An offset skips entries on the side it counts from: both sides are said.
    shown = cli.invoke(cli_app, ["incident", "timeline", ref, "--limit", "3", "--offset", "20"])
    assert table_seqs(shown.output) == list(range(ENTRIES - 22, ENTRIES - 19))
    said = " ".join(shown.output.split())
    assert f"{ENTRIES - 23} earlier entries not shown" in said and "20 later entries not shown" in said

    # Everything there is: no word of more.
    shown = cli.invoke(cli_app, ["incident", "timeline", ref, "--after-seq", "125"])
    assert table_seqs(shown.output) == [126, 127, 128, 129, 130] and "not shown" not in shown.output


def test_the_cli_shows_every_entry_with_all(ref: str, cli: CliRunner) -> None:
    shown = cli.invoke(cli_app, ["incident", "timeline", ref, "--all"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert table_seqs(shown.output) == list(range(1, ENTRIES + 1)) and "not shown" not in shown.output
    every = json.loads(cli.invoke(cli_app, ["incident", "timeline", ref, "--all", "--json"]).output)
    assert [entry["seq"] for entry in every] == list(range(1, ENTRIES + 1))
    assert every[-1]["action"] == f"step {ENTRIES}"
    # --json of a page is the page, as the API answers it (and as `incident list --json` prints its list).
    read = json.loads(cli.invoke(cli_app, ["incident", "timeline", ref, "--json", "--limit", "2"]).output)
    assert (read["total"], read["limit"], [entry["seq"] for entry in read["items"]]) == (
        ENTRIES,
        2,
        [129, 130],
    )
    refused = cli.invoke(cli_app, ["incident", "timeline", ref, "--all", "--limit", "5"])
    assert refused.exit_code != 0 and "--all" in refused.output
