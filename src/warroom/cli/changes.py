"""``warroom changes``: record and list change events (deploys, config pushes) (client, HTTP)."""

from __future__ import annotations

from typing import Annotated

import typer

from warroom.cli.helptext import DURATION_FORMS
from warroom.cli.output import (
    IdColumn,
    WordColumn,
    api_errors,
    console,
    emit,
    instant,
    table,
    usage_error,
)
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, now_moved_by, period_bound, row_number
from warroom.client import Client
from warroom.durations import names_a_date, time_of_day_problem
from warroom.fields import one_line

changes_app = typer.Typer(
    help="Change events: deploys and config pushes, listed on incidents that open soon after (client).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@changes_app.command("record", cls=OnceOnlyCommand)
def record(
    summary: Annotated[str, typer.Argument(help="What changed, e.g. 'Deployed checkout-api 2.14.0'.")],
    service: Annotated[str | None, typer.Option(help="The service it changed (one of the org file).")] = None,
    source: Annotated[str | None, typer.Option(help="What made it: a pipeline, a tool, a host.")] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="When it happened, in the past (default now): a time, e.g. 2025-11-03T02:00:00Z, or how "
            "long ago, e.g. 30m.",
        ),
    ] = None,
    link: Annotated[list[str] | None, typer.Option("--link", help="A URL about it (repeatable).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Record a change (responder token)."""
    if not summary.strip():
        usage_error("the summary must not be blank")
    happened_at = _happened_at(at)
    with api_errors(), Client() as client:
        change = client.record_change(
            summary, service=service, source=source, happened_at=happened_at, links=link
        )
    noted = f"; on the timeline of {', '.join(change.noted_on)}" if change.noted_on else ""
    emit(as_json, change, lambda: console.print(f"[green]recorded[/] {change.ref}{noted}"))


def _happened_at(at: str | None) -> str | None:
    """``--at``: a time, or how long ago (``30m``, ``2h``), as ``--since`` reads one."""
    if at is None or names_a_date(at):
        return instant(at, "--at")
    problem = time_of_day_problem(at)
    if problem is not None:  # 18:00 would read as a duration's mistake: say what it is
        raise typer.BadParameter(problem, param_hint="--at")
    return now_moved_by(at, "--at", sign=-1, otherwise="or give an ISO 8601 time, e.g. 2025-11-03T02:00:00Z")


@changes_app.command("list", cls=OnceOnlyCommand)
def list_(
    service: Annotated[
        str | None, typer.Option(help="This service's changes, and those that name no service.")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Changes since: how long ago ({DURATION_FORMS}) or a time (2026-12-07T09:00); default 24h.",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", help="Changes until: how long ago (as --since), or a time; default now."),
    ] = None,
    incident: Annotated[
        str | None,
        typer.Option(
            "--incident",
            help="The changes around this incident: its services', from shortly before it opened until "
            "it was resolved. Not with --service, --since or --until.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    before_id: BeforeIdOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Changes of the period, newest first."""
    if incident is not None and (service is not None or since is not None or until is not None):
        usage_error(
            "--incident cannot be combined with --service, --since or --until: the incident sets them"
        )
    sent_since, sent_until = period_bound(since, "--since"), period_bound(until, "--until")
    with api_errors(), Client() as client:
        page = client.list_changes(
            service=service,
            since=sent_since,
            until=sent_until,
            incident=incident,
            limit=limit,
            offset=offset,
            before_id=row_number(before_id, "CHG", "--before-id"),
        )
    if incident:
        title = f"Changes around {incident}"
    elif until is None and (since is None or sent_since == since):  # a period ending now
        title = f"Changes in the last {since or '24h'}"
    else:
        title = "Changes" + (f" since {since}" if since else "") + (f" until {until}" if until else "")
    emit(
        as_json,
        page,
        lambda: table(
            f"{title} ({len(page.items)} of {page.total})",
            [
                IdColumn("change"),
                "when",
                "summary",
                WordColumn("service"),
                WordColumn("source", drop=1),
                WordColumn("recorded by", drop=2),
            ],
            [
                # A summary sent with line breaks would look like several changes.
                (
                    row.ref,
                    row.happened_at,
                    one_line(row.summary),
                    row.service,
                    row.source and one_line(row.source),
                    row.recorded_by,
                )
                for row in page.items
            ],
        ),
    )
