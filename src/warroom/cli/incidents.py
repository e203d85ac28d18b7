"""Client commands: they speak HTTP to WARROOM_URL with WARROOM_TOKEN."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from warroom.cli.output import (
    SEVERITY_STYLE,
    STATUS_STYLE,
    IdColumn,
    RowIdArgument,
    TextColumn,
    WordColumn,
    api_errors,
    console,
    emit,
    error_console,
    fail,
    fields_table,
    one_line,
    styled,
    table,
    when,
)
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, row_number
from warroom.client import Client
from warroom.incidents.schemas import IncidentRead

incident_app = typer.Typer(
    help="Work with incidents (client; uses WARROOM_URL and WARROOM_TOKEN).", no_args_is_help=True
)
responder_app = typer.Typer(help="Add or remove responders on an incident.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _client() -> Client:
    return Client()


def _show(incident: IncidentRead) -> None:
    console.print(f"[bold]{incident.id}[/] {escape(one_line(incident.title))}")
    rows = [
        ("severity", styled(incident.severity, SEVERITY_STYLE)),
        ("status", styled(incident.status.value, STATUS_STYLE)),
        ("commander", incident.commander or "—"),
        ("services", ", ".join(incident.services) or "—"),
        ("private", "yes" if incident.is_private else "no"),
        ("created", f"{when(incident.created_at)} by {incident.created_by}"),
        (
            "acknowledged",
            f"{when(incident.acknowledged_at)}"
            + (f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""),
        ),
        ("response due", when(incident.response_due_at)),
        ("resolved", when(incident.resolved_at)),
    ]
    console.print(fields_table(None, ("field", "value"), rows))
    if incident.summary:
        console.print(escape(incident.summary))
    active = [r for r in incident.responders if r.left_at is None]
    if active:
        table(
            "Responders",
            [IdColumn("id"), "name", WordColumn("role"), "contact", WordColumn("joined", drop=1)],
            [(r.id, r.name, r.role, r.contact or "—", r.joined_at) for r in active],
        )


@incident_app.command("create", cls=OnceOnlyCommand)
def create(
    title: Annotated[str, typer.Argument(help="What is wrong, in a line.")],
    severity: Annotated[
        str | None, typer.Option("--severity", "-s", help="P0..P3; suggested if omitted.")
    ] = None,
    service: Annotated[
        list[str] | None, typer.Option("--service", help="Affected service (repeatable).")
    ] = None,
    summary: Annotated[str, typer.Option(help="Longer description.")] = "",
    commander: Annotated[str | None, typer.Option(help="Who commands the response.")] = None,
    private: Annotated[bool, typer.Option("--private", help="Keep it off the public status page.")] = False,
    assessment: Annotated[str | None, typer.Option(help="Initial assessment as JSON.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Declare an incident."""
    fields: dict[str, object] = {
        "title": title,
        "summary": summary,
        "services": service or [],
        "is_private": private,
    }
    if severity is not None:
        fields["severity"] = severity
    if commander is not None:
        fields["commander"] = commander
    if assessment:
        try:
            fields["assessment"] = json.loads(assessment)
        except json.JSONDecodeError as exc:
            fail(f"--assessment is not valid JSON: {exc}")
    with api_errors(), _client() as client:
        incident = client.create_incident(**fields)
    emit(as_json, incident, lambda: _show(incident))


@incident_app.command("list", cls=OnceOnlyCommand)
def list_(
    status: Annotated[
        list[str] | None, typer.Option("--status", help="Filter by status (repeatable).")
    ] = None,
    severity: Annotated[list[str] | None, typer.Option("--severity", help="Filter by severity.")] = None,
    service: Annotated[str | None, typer.Option(help="Only incidents affecting this service.")] = None,
    open_only: Annotated[bool, typer.Option("--open", help="Only open incidents.")] = False,
    closed_only: Annotated[bool, typer.Option("--closed", help="Only resolved or closed incidents.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    before_id: BeforeIdOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List incidents, newest first."""
    if open_only and closed_only:
        raise typer.BadParameter("give --open or --closed, not both (neither lists all)", param_hint="--open")
    state = "open" if open_only else "closed" if closed_only else "all"
    with api_errors(), _client() as client:
        page = client.list_incidents(
            status=status,
            severity=severity,
            service=service,
            state=state,
            limit=limit,
            offset=offset,
            before_id=row_number(before_id, "INC", "--before-id"),
        )
    emit(
        as_json,
        page,
        lambda: table(
            f"Incidents ({len(page.items)} of {page.total})",
            # In 80 columns the commander, the services and then when it was created are left out.
            [
                IdColumn("id"),
                WordColumn("sev"),
                WordColumn("status"),
                "title",
                WordColumn("services", drop=2),
                WordColumn("commander", drop=1),
                WordColumn("created", drop=3),
                WordColumn("ack"),
            ],
            [
                (
                    i.id,
                    styled(i.severity, SEVERITY_STYLE),
                    styled(i.status.value, STATUS_STYLE),
                    i.title,
                    ", ".join(i.services),
                    i.commander,
                    i.created_at,
                    "yes" if i.acknowledged_at else "no",
                )
                for i in page.items
            ],
        ),
    )


@incident_app.command("show", cls=OnceOnlyCommand)
def show(ref: str, as_json: JsonFlag = False) -> None:
    """Show one incident."""
    with api_errors(), _client() as client:
        incident = client.get_incident(ref)
    emit(as_json, incident, lambda: _show(incident))


@incident_app.command("update", cls=OnceOnlyCommand)
def update(
    ref: str,
    status: Annotated[
        str | None, typer.Option(help="investigating, identified, monitoring, resolved, ...")
    ] = None,
    severity: Annotated[str | None, typer.Option(help="New severity level.")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    summary: Annotated[str | None, typer.Option()] = None,
    commander: Annotated[str | None, typer.Option(help="Hand command to this person.")] = None,
    service: Annotated[list[str] | None, typer.Option("--service", help="Replace affected services.")] = None,
    note: Annotated[str | None, typer.Option(help="Why; goes on the timeline.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Change status, severity, commander or other fields."""
    fields = {
        k: v
        for k, v in {
            "status": status,
            "severity": severity,
            "title": title,
            "summary": summary,
            "commander": commander,
            "services": service,
            "note": note,
        }.items()
        if v is not None
    }
    with api_errors(), _client() as client:
        incident = client.update_incident(ref, **fields)
    emit(as_json, incident, lambda: _show(incident))


@incident_app.command("ack", cls=OnceOnlyCommand)
def ack(ref: str, as_json: JsonFlag = False) -> None:
    """Acknowledge an incident (stops escalation)."""
    with api_errors(), _client() as client:
        incident = client.acknowledge(ref)
    emit(
        as_json,
        incident,
        lambda: console.print(
            escape(f"{incident.id} acknowledged by {incident.acknowledged_by}")
            + f" at {when(incident.acknowledged_at)}"
        ),
    )


@incident_app.command("resolve", cls=OnceOnlyCommand)
def resolve(
    ref: str,
    note: Annotated[str | None, typer.Option(help="What fixed it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark an incident resolved."""
    with api_errors(), _client() as client:
        incident = client.resolve(ref, note)
    emit(as_json, incident, lambda: console.print(f"{incident.id} resolved at {when(incident.resolved_at)}"))


@incident_app.command("merge", cls=OnceOnlyCommand)
def merge(
    ref: Annotated[str, typer.Argument(help="The incident to fold in (resolved as merged), e.g. INC-4.")],
    into: Annotated[str, typer.Option("--into", help="The open incident that goes on, e.g. INC-3.")],
    note: Annotated[str | None, typer.Option(help="Why, for the record (on both timelines).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fold an incident into another: one cause opened both. Its alerts move there (and later alerts of
    their groups follow), and it is resolved as merged."""
    with api_errors(), _client() as client:
        merged = client.merge_incident(ref, into, note=note)
    emit(
        as_json,
        merged,
        lambda: console.print(
            f"{merged.incident} merged into [bold]{merged.into}[/]: "
            + (f"{len(merged.alerts)} alert(s) moved" if merged.alerts else "it had no alerts")
        ),
    )


@incident_app.command("timeline", cls=OnceOnlyCommand)
def timeline(ref: str, as_json: JsonFlag = False) -> None:
    """Show the incident's timeline."""
    with api_errors(), _client() as client:
        entries = client.timeline(ref)
    emit(
        as_json,
        entries,
        lambda: table(
            f"Timeline of {ref.upper()}",
            [
                IdColumn("#"),
                "time",
                WordColumn("who", drop=2),
                WordColumn("kind", drop=1),
                "action",
                TextColumn("impact", drop=3),
            ],
            [(e.seq, e.occurred_at, e.performer, e.kind, e.action, e.impact) for e in entries],
        ),
    )


@incident_app.command("send-update", cls=OnceOnlyCommand)
def send_update(
    ref: str,
    message: str,
    audience: Annotated[
        str, typer.Option(help="internal, status-page, customers, executives, ...")
    ] = "internal",
    as_json: JsonFlag = False,
) -> None:
    """Send an update to an audience; the channel comes from the org file. Exits 1 when a channel could not
    take it and none queued it."""
    with api_errors(), _client() as client:
        communication = client.send_update(ref, message, audience)
    outcomes = communication.outcomes or []
    failed = [outcome for outcome in outcomes if outcome.outcome == "not_sent"]
    taken = [o.channel for o in outcomes if o.outcome != "not_sent"] if outcomes else communication.channels

    def show() -> None:
        if taken:
            console.print(escape(f"Sent to {communication.audience} via {', '.join(taken)}"))
        for outcome in failed:
            retry = (
                f"; once fixed: warroom notify retry {outcome.notification}" if outcome.notification else ""
            )
            error_console.print(
                "[bold red]not sent[/] "
                + escape(f"to {communication.audience} via {outcome.channel}: {outcome.error}{retry}")
            )

    emit(as_json, communication, show)
    if failed and not any(outcome.outcome == "queued" for outcome in outcomes):
        raise typer.Exit(1)


@responder_app.command("add", cls=OnceOnlyCommand)
def responder_add(
    ref: str,
    name: str,
    role: Annotated[
        str, typer.Option(help="commander, technical, communications, scribe, ...")
    ] = "technical",
    contact: Annotated[str, typer.Option(help="Email, phone or chat handle.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Add a responder (role commander hands over command)."""
    with api_errors(), _client() as client:
        responder = client.add_responder(ref, name, role, contact)
    emit(
        as_json,
        responder,
        lambda: console.print(escape(f"{responder.name} is on {ref.upper()} as {responder.role}")),
    )


@responder_app.command("remove", cls=OnceOnlyCommand)
def responder_remove(ref: str, responder_id: RowIdArgument, as_json: JsonFlag = False) -> None:
    """Mark a responder as having left."""
    with api_errors(), _client() as client:
        responder = client.remove_responder(ref, responder_id)
    said = (
        f"{responder.name} had already left {ref.upper()} (at {when(responder.left_at)})"
        if responder.unchanged
        else f"{responder.name} left {ref.upper()}"
    )
    emit(as_json, responder, lambda: console.print(escape(said)))


def log(
    ref: str,
    action: Annotated[str, typer.Argument(help="What was done.")],
    impact: Annotated[str | None, typer.Option(help="What it changed.")] = None,
    note: Annotated[bool, typer.Option("--note", help="A note rather than an action.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Log an action on an incident's timeline."""
    with api_errors(), _client() as client:
        entry = client.log_action(ref, action, impact=impact, kind="note" if note else "action")
    emit(as_json, entry, lambda: console.print(f"Logged #{entry.seq} on {ref.upper()}"))
