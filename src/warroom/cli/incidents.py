"""Client commands: they speak HTTP to WARROOM_URL with WARROOM_TOKEN."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.text import Text

from warroom.cli.helptext import IncidentRef
from warroom.cli.output import (
    LONG_TEXT,
    SEVERITY_STYLE,
    STATUS_STYLE,
    Columns,
    IdColumn,
    RowIdArgument,
    TextColumn,
    WordColumn,
    api_errors,
    clipped,
    console,
    emit,
    error_console,
    fields_table,
    one_line,
    styled,
    table,
    usage_error,
    when,
)
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, row_number
from warroom.client import Client
from warroom.incidents.schemas import (
    TIMELINE_PAGE,
    TIMELINE_PAGE_MAX,
    CommunicationRead,
    IncidentRead,
    TimelineEntryRead,
    TimelinePage,
)

if TYPE_CHECKING:
    from warroom.orgconfig import ConfigError

incident_app = typer.Typer(
    help="Work with incidents (client; uses WARROOM_URL and WARROOM_TOKEN).", no_args_is_help=True
)
responder_app = typer.Typer(help="Add or remove responders on an incident.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _client() -> Client:
    return Client()


def _status(incident: IncidentRead) -> Text:
    """Its status for a list: a merged incident as ``merged → INC-5`` (resolved by the merge, its alerts and
    pages there), not as one resolved by a fix."""
    if incident.merged_into:
        return Text(f"merged → {incident.merged_into}", style=STATUS_STYLE.get(incident.status.value, ""))
    return styled(incident.status.value, STATUS_STYLE)


def _acknowledged(incident: IncidentRead) -> str:
    if incident.acknowledged_at is None and incident.merged_into:
        # Nobody had it: whoever acknowledges the problem does so on the incident it went into.
        return f"— (merged: see {incident.merged_into})"
    return f"{when(incident.acknowledged_at)}" + (
        f" by {incident.acknowledged_by}" if incident.acknowledged_by else ""
    )


def _show(incident: IncidentRead) -> None:
    console.print(f"[bold]{incident.id}[/] {escape(one_line(incident.title))}")
    status = styled(incident.status.value, STATUS_STYLE)
    if incident.merged_into:
        status.append(f", merged into {incident.merged_into} at {when(incident.resolved_at)}")
    rows = [
        ("severity", styled(incident.severity, SEVERITY_STYLE)),
        ("status", status),
        ("commander", incident.commander or "—"),
        ("services", ", ".join(incident.services) or "—"),
        ("private", "yes" if incident.is_private else "no"),
        ("created", f"{when(incident.created_at)} by {incident.created_by}"),
        ("acknowledged", _acknowledged(incident)),
        ("response due", when(incident.response_due_at)),
        ("resolved", when(incident.resolved_at)),
    ]
    if incident.update_due_at is not None:
        # The war-room cadence of the severity: the commander is reminded then unless an update goes out.
        due: str | Text = when(incident.update_due_at)
        if incident.update_due_at <= datetime.now(UTC):
            due = Text(f"{due}: overdue (the commander was reminded)", style="bold red")
        rows.insert(-1, ("update due", due))
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
            usage_error(f"--assessment is not valid JSON: {exc}")
    with api_errors(), _client() as client:
        incident = client.create_incident(**fields)
    emit(as_json, incident, lambda: _show(incident))
    if commander:
        _warn_if_no_one_to_remind(commander)


def _warn_if_no_one_to_remind(commander: str, *, give: str = "--commander") -> None:
    """With an org file in use (WARROOM_CONFIG), a commander who is not one of its people (by ``name``, the
    handle) is taken, but the update-due reminders can never reach them: said on stderr, a warning only (the
    server may run with another file; a name outside the org is allowed). An org file that cannot be read
    is said too, once: the name could not be checked. ``give``: how the command takes the name (to say
    which of the people was likely meant)."""
    from pydantic import ValidationError

    from warroom.orgconfig import ConfigError, load_org_config
    from warroom.settings import Settings

    try:
        path = Settings().config
    except ValidationError:
        return  # another WARROOM_* setting is wrong: the commands that use it say so
    if path is None:
        return
    try:
        people = load_org_config(path).people
    except ConfigError as exc:
        # A missing file, a directory, one that cannot be read or parsed: without a word, no warning read
        # as "this commander is one of its people".
        error_console.print(
            escape(
                f"warning: WARROOM_CONFIG {path} could not be read ({_first_problem(exc)}), so {commander!r} "
                "could not be checked against its people (the update-due reminders reach only them)"
            ),
            style="yellow",
        )
        return
    if any(person.name == commander.strip() for person in people):  # the server trims it, as here
        return
    folded = commander.strip().casefold()
    meant = next(
        (p.name for p in people if folded in (p.name.casefold(), (p.display_name or "").casefold())), None
    )
    error_console.print(
        escape(
            f"warning: {commander!r} is not a person of the org file {path} (its people's names: "
            f"{', '.join(p.name for p in people) or 'none'}): the update-due reminders cannot reach this "
            "commander" + (f"; give {give} {meant} to reach {commander!r}" if meant else "")
        ),
        style="yellow",
    )


def _first_problem(exc: ConfigError) -> str:
    """Why an org file could not be read, in a few words: its first problem, and how many more there are."""
    problems = exc.problems
    if not problems:
        return str(exc)
    first = problems[0]
    # A problem of the file as a whole (unreadable, not YAML) is located at the file, named already.
    whole = first.location in ("(file)", exc.path)
    said = (f"line {first.line}: " if first.line else "") + first.message if whole else str(first)
    return said + (f"; {len(problems) - 1} more problem(s)" if len(problems) > 1 else "")


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
                    _status(i),
                    i.title,
                    ", ".join(i.services),
                    i.commander,
                    i.created_at,
                    "yes" if i.acknowledged_at else "—" if i.merged_into else "no",
                )
                for i in page.items
            ],
        ),
    )


@incident_app.command("show", cls=OnceOnlyCommand)
def show(ref: IncidentRef, as_json: JsonFlag = False) -> None:
    """Show one incident."""
    with api_errors(), _client() as client:
        incident = client.get_incident(ref)
    emit(as_json, incident, lambda: _show(incident))


@incident_app.command("update", cls=OnceOnlyCommand)
def update(
    ref: IncidentRef,
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

    def show() -> None:
        if incident.unchanged:
            asked = (
                f"was {status} already" if set(fields) - {"note"} == {"status"} else "had all that already"
            )
            console.print(escape(_nothing_changed(f"{incident.id} {asked}", note)))
        _show(incident)

    emit(as_json, incident, show)
    if commander:
        _warn_if_no_one_to_remind(commander)


def _nothing_changed(said: str, note: str | None) -> str:
    """How a repeat is answered: it changed nothing (and its note, if it had one, is on the timeline)."""
    return f"nothing changed: {said}" + ("; the note is on its timeline" if note else "")


@incident_app.command("ack", cls=OnceOnlyCommand)
def ack(ref: IncidentRef, as_json: JsonFlag = False) -> None:
    """Acknowledge an incident (stops escalation)."""
    with api_errors(), _client() as client:
        incident = client.acknowledge(ref)
    said = f"{incident.id} acknowledged by {incident.acknowledged_by} at {when(incident.acknowledged_at)}"
    if incident.unchanged:
        said = _nothing_changed(
            f"{incident.id} was acknowledged already, by {incident.acknowledged_by} at "
            f"{when(incident.acknowledged_at)}",
            None,
        )
    emit(as_json, incident, lambda: console.print(escape(said)))


@incident_app.command("resolve", cls=OnceOnlyCommand)
def resolve(
    ref: IncidentRef,
    note: Annotated[str | None, typer.Option(help="What fixed it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Mark an incident resolved."""
    with api_errors(), _client() as client:
        incident = client.resolve(ref, note)
    # A repeat (a retrying job) says it changed nothing, with or without a note, and exits 0.
    said = (
        _nothing_changed(
            f"{incident.id} was {incident.status.value} already (at {when(incident.resolved_at)}"
            + (f", merged into {incident.merged_into})" if incident.merged_into else ")"),
            note,
        )
        if incident.unchanged
        else f"{incident.id} resolved at {when(incident.resolved_at)}"
    )
    emit(as_json, incident, lambda: console.print(escape(said)))


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


# How much of an update's message a table shows; ``--json`` has all of it.
MESSAGE_SHOWN = 200


def _action(entry: TimelineEntryRead) -> str:
    """An entry's text as the timeline table shows it: an update's with what it said (cut if long)."""
    message = (entry.data or {}).get("message") if entry.kind == "communication" else None
    if not isinstance(message, str):
        return entry.action
    return f"{entry.action}: “{clipped(message, MESSAGE_SHOWN)}”"


TIMELINE_COLUMNS: Columns = [
    IdColumn("#"),
    "time",
    WordColumn("who", drop=2),
    WordColumn("kind", drop=1),
    "action",
    TextColumn("impact", drop=3),
]


def _timeline_table(title: str, entries: list[TimelineEntryRead], caption: str | None = None) -> None:
    table(
        title,
        TIMELINE_COLUMNS,
        [(e.seq, e.occurred_at, e.performer, e.kind, _action(e), e.impact) for e in entries],
        # Entries seconds apart (a flapping alert) must read apart, however narrow the terminal.
        seconds=True,
        caption=caption,
    )


def _left_out(ref: str, page: TimelinePage, *, forward: bool) -> str | None:
    """What the page leaves out on either side, and the commands that show it. Newest first by default, so
    ``offset`` skips later entries; with --after-seq (``forward``) it skips earlier ones."""
    if not page.items:
        return None
    beyond = page.total - page.offset - len(page.items)  # on the side the page moves towards
    skipped = page.offset  # on the side it started from
    earlier, later = (skipped, beyond) if forward else (beyond, skipped)
    command = f"warroom incident timeline {ref}"
    said: list[str] = []
    if earlier > 0:
        said.append(
            f"{earlier} earlier entr{'y' if earlier == 1 else 'ies'} not shown "
            f"({command} --before-seq {page.items[0].seq})"
        )
    if later > 0:
        said.append(
            f"{later} later entr{'y' if later == 1 else 'ies'} not shown "
            f"({command} --after-seq {page.items[-1].seq})"
        )
    return "; ".join(said) + "; --all for every one" if said else None


@incident_app.command("timeline", cls=OnceOnlyCommand)
def timeline(
    ref: IncidentRef,
    limit: Annotated[
        int, typer.Option(min=1, max=TIMELINE_PAGE_MAX, help="How many entries (the newest, by default).")
    ] = TIMELINE_PAGE,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many (the newest, by default).")] = 0,
    before_seq: Annotated[
        int | None,
        typer.Option(
            "--before-seq", min=1, help="Only entries before this # (the first one shown: the page before)."
        ),
    ] = None,
    after_seq: Annotated[
        int | None,
        typer.Option(
            "--after-seq",
            min=0,
            help="Only entries after this # (the last one seen: what came since), oldest first.",
        ),
    ] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every entry, oldest first, read and shown a page at a time (--json: one list)."
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show the incident's latest timeline entries, oldest first (an update's message cut at 200
    characters; --json has all); says how many earlier ones it left out and how to see them."""
    if every and (before_seq is not None or offset or limit != TIMELINE_PAGE):
        usage_error(
            "--all shows every entry; it takes no --limit, --offset or --before-seq (--after-seq: from there)"
        )
    shown = ref.upper()
    with api_errors(), _client() as client:
        if every:
            _every_entry(client, ref, shown, after_seq or 0, as_json=as_json)
            return
        page = client.timeline(ref, limit=limit, offset=offset, before_seq=before_seq, after_seq=after_seq)
    left_out = _left_out(ref, page, forward=after_seq is not None)
    emit(
        as_json,
        page,
        lambda: _timeline_table(
            f"Timeline of {shown} ({len(page.items)} of {page.total})", page.items, left_out
        ),
    )


def _every_entry(client: Client, ref: str, shown: str, after_seq: int, *, as_json: bool) -> None:
    """``--all``: each page printed as it is read (a table, or the entries of one JSON list), so thousands of
    entries (an alert storm's) start showing at once and are never asked for in one answer."""
    printed = 0
    if as_json:
        typer.echo("[")
    for page in client.timeline_entries(ref, after_seq=after_seq):
        if as_json:
            for entry in page.items:
                text = json.dumps(entry.model_dump(mode="json"), indent=2)
                typer.echo(("," if printed else "") + textwrap.indent(text, "  "))
                printed += 1
            continue
        first, last = page.items[0].seq, page.items[-1].seq
        more = page.total - len(page.items)  # after this page, as of now
        _timeline_table(
            f"Timeline of {shown} (#{first} to #{last}" + (f", {more} more)" if more > 0 else ")"), page.items
        )
        printed += len(page.items)
    if as_json:
        typer.echo("]")
    elif not printed:
        _timeline_table(f"Timeline of {shown} (0 entries)", [])


def _channels(update: CommunicationRead) -> str:
    """Where an update went: each channel with its outcome, when the server says (``not sent`` with the
    notification to retry)."""
    if update.outcomes is None:
        return ", ".join(update.channels) or "—"
    said = {"queued": "queued", "logged": "logged", "not_sent": "NOT SENT"}
    return ", ".join(
        f"{o.channel} {said[o.outcome]}" + (f" (#{o.notification})" if o.outcome == "not_sent" else "")
        for o in update.outcomes
    )


@incident_app.command("updates", cls=OnceOnlyCommand)
def updates(ref: IncidentRef, as_json: JsonFlag = False) -> None:
    """List the updates sent about an incident (its communications log), oldest first: to whom, on which
    channels with what outcome, and what they said (cut at 300 characters; --json has all)."""
    with api_errors(), _client() as client:
        sent = client.updates(ref)
    cut = any(len(update.message) > LONG_TEXT for update in sent)
    emit(
        as_json,
        sent,
        lambda: table(
            f"Updates on {ref.upper()} ({len(sent)})",
            [
                IdColumn("#"),
                "time",
                WordColumn("audience"),
                TextColumn("channels", drop=2),
                "message",
                WordColumn("by", drop=1),
            ],
            [(u.id, u.sent_at, u.audience, _channels(u), clipped(u.message), u.sender) for u in sent],
            seconds=True,
            caption=f"messages cut at {LONG_TEXT} characters: --json has all" if cut else None,
        ),
    )


@incident_app.command("send-update", cls=OnceOnlyCommand)
def send_update(
    ref: IncidentRef,
    message: Annotated[str, typer.Argument(help="The update, as its audience will read it.")],
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
    ref: IncidentRef,
    name: Annotated[str, typer.Argument(help="Who joins the response.")],
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
    if responder.role == "commander":  # command handed over, as --commander does
        _warn_if_no_one_to_remind(name, give="the name")


@responder_app.command("remove", cls=OnceOnlyCommand)
def responder_remove(ref: IncidentRef, responder_id: RowIdArgument, as_json: JsonFlag = False) -> None:
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
    ref: IncidentRef,
    action: Annotated[str, typer.Argument(help="What was done.")],
    impact: Annotated[str | None, typer.Option(help="What it changed.")] = None,
    note: Annotated[bool, typer.Option("--note", help="A note rather than an action.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Log an action on an incident's timeline."""
    with api_errors(), _client() as client:
        entry = client.log_action(ref, action, impact=impact, kind="note" if note else "action")
    emit(as_json, entry, lambda: console.print(f"Logged #{entry.seq} on {ref.upper()}"))
