"""QA round (narrow terminals): a list's tables fit the terminal at 40 to 70 columns. Columns are left out,
the least important first, and named in the note, rather than the free text (a summary, a title, an alert
type) being squeezed to nothing or the table running past the right edge; the note wraps, never cut."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from rich.cells import cell_len
from typer.testing import CliRunner

from tests.alerts.conftest import make_key
from tests.alerts.test_dependency_grouping import fire
from tests.conftest import cli_through_the_app
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.notify.enums import DeliveryStatus
from warroom.notify.models import Delivery

WIDTHS = (40, 50, 60, 70)
# The least of its free text a table shows on one line (TEXT_LEAST is 15, its padding aside).
SHOWN = 14

CLIENT_MODULES = ("alerts", "incidents", "notify", "changes")


@pytest.fixture
def cli(
    api: TestClient, context: AppContext, tokens: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[CliRunner]:
    """Two critical alerts on the database (so two incidents, and their paging jobs), a change, and a dead
    letter, listed by the CLI through the test app."""
    key = make_key(context, "generic", "scripts")
    fire(api, key, "database", "DiskSpaceLow", summary="Disk space low on db-1 /var/lib/postgresql")
    fire(api, key, "database", "ReplicationLag", summary="Replication lag above 30s on db-2")
    recorded = api.post(
        "/api/v1/changes",
        json={"summary": "Rolled out the new cart service", "service": "database"},
        headers={"Authorization": f"Bearer {tokens['responder']}"},
    )
    assert recorded.status_code == 201, recorded.text
    with context.db.write() as session:
        session.add(
            Delivery(
                channel="ops-mail",
                channel_type="email",
                recipient="ops@example.com",
                template="incident_opened",
                subject="INC-1 opened: DiskSpaceLow on database",
                body="",
                data={},
                status=DeliveryStatus.dead,
                attempts=5,
                last_error="mailbox unavailable for ops@example.com",
                incident_id=1,
            )
        )
    yield cli_through_the_app(
        api, tokens["admin"], monkeypatch, *(f"warroom.cli.{module}" for module in CLIENT_MODULES)
    )


def the_note(output: str) -> str:
    """The note under a table, its lines joined again (it wraps to the table's width)."""
    joined = " ".join(output.split())
    found = re.search(r"not shown at this width: [^()]*\(--json has all\)", joined)
    return found.group(0) if found else ""


# Each table: its command, a text of its free-text column, and the headers that are either shown or named in
# the note (a column left out unnamed is a column lost).
TABLES = [
    (
        ["alerts", "list", "--limit", "2"],
        "Disk space low on db-1",
        ["id", "summary", "incident", "status", "sev", "source", "service", "count", "last"],
    ),
    (["incident", "list"], "DiskSpaceLow on database", ["id", "title", "sev", "status", "ack", "created"]),
    (
        ["alerts", "overview"],
        "DiskSpaceLow on database",  # an open incident's title (the loudest types say DiskSpaceLow alone)
        ["sev", "status", "ack", "title", "opened"],
    ),
    (
        ["alerts", "noise"],
        "DiskSpaceLow",
        ["type", "notifications", "alerts", "incidents", "unrouted", "open"],
    ),
    (["jobs", "list", "--limit", "2"], "", ["id", "kind", "status", "run", "attempts", "incident"]),
    (["notify", "list"], "mailbox unavailable for", ["id", "incident", "updated", "last error", "subject"]),
    (["notify", "failures"], "mailbox unavailable for", ["id", "incident", "updated", "last error"]),
    (["changes", "list"], "Rolled out the new cart", ["change", "when", "summary", "service", "source"]),
]


@pytest.mark.parametrize("width", WIDTHS)
def test_list_tables_fit_narrow_terminals_and_keep_their_free_text(
    cli: CliRunner, database_url: str, width: int
) -> None:
    for args, text, headers in TABLES:
        extra = ["--database-url", database_url] if args[0] == "jobs" else []
        result = cli.invoke(app, [*args, *extra], env={"COLUMNS": str(width)})
        what = f"{' '.join(args)} at {width} columns:\n{result.output}"
        assert result.exit_code == 0, what
        # Nothing past the right edge: every line, the tables' borders and notes too.
        assert all(cell_len(line) <= width for line in result.output.splitlines()), what
        # The free text keeps a usable width: its start on one line, not a letter or none a line.
        if text:
            assert any(text[:SHOWN] in line for line in result.output.splitlines()), what
        # A column is shown or named in the note; the note is whole.
        note = the_note(result.output)
        assert ("not shown at this width" in result.output) == bool(note), what
        shown = " ".join(result.output.split())
        for header in headers:
            assert header in note or all(word in shown for word in header.split()), (header, what)
        # Each table keeps both its edges.
        for line in result.output.splitlines():
            if line.startswith(("┏", "┃", "│", "└")):
                assert line.rstrip()[-1] in "┓┃│┘", what
