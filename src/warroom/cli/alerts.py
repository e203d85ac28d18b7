"""``warroom alerts`` and ``warroom report`` (client, HTTP); ``warroom integration`` (admin, local)."""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.progress import track
from rich.table import Table
from rich.text import Text

from warroom.alerts.enums import AlertStatus
from warroom.alerts.schemas import (
    AlertDetail,
    AlertOverview,
    AlertPage,
    AlertRead,
    HeartbeatRead,
    SnoozeRequest,
    snooze_end,
)
from warroom.auth.enums import IntegrationType
from warroom.cli.helptext import DURATION_FORMS, GRAFANA_HEADERS_EPILOG, AlertRef
from warroom.cli.output import (
    SEVERITY_STYLE,
    At,
    ForOption,
    IdColumn,
    RowIdArgument,
    TextColumn,
    Timed,
    UntilOption,
    WordColumn,
    abridged,
    api_errors,
    bar,
    build_table,
    console,
    emit,
    error_console,
    fail,
    fields_table,
    go_on,
    name_values,
    one_end,
    one_line,
    print_json,
    refusal_text,
    styled,
    table,
    usage_error,
    when,
)
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, period_bound, row_number
from warroom.client import ApiError, Client
from warroom.durations import format_duration
from warroom.errors import InvalidInput, NotFound, WarroomError, field_at_fault
from warroom.fields import parse_row_ref, validation_message
from warroom.orgconfig import OrgConfig

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from warroom.auth.integrations import IntegrationRead

alerts_app = typer.Typer(
    help="Alerts from monitoring and reports (client; uses WARROOM_URL and WARROOM_TOKEN).",
    no_args_is_help=True,
)
integration_app = typer.Typer(help="Integration keys for alert sources (admin).", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
SigningSecretValue = Annotated[
    str | None,
    typer.Option(
        "--signing-secret-value",
        envvar="WARROOM_INTEGRATION_SIGNING_SECRET",
        show_envvar=True,
        help="Integrations that sign (grafana, webhook): use this signing secret instead of generating one "
        "(16 to 200 characters; the environment variable keeps it out of the process list).",
    ),
]
ALERT_STATUS_STYLE = {"firing": "red", "acknowledged": "yellow", "resolved": "green"}
ALERT_SEVERITY_STYLE = {"critical": "bold red", "error": "red", "warning": "yellow", "info": "dim"}


# The columns of an alert list (``alert_row``), in ``alerts list`` and ``maintenance show``. In 80 columns
# the source, then the count, then the service are left out: status, severity, summary, incident and when
# are what a responder triages by. The status (whether anyone owns the alert) is the last of them to go:
# the summary gives 3 characters more than other free text (12) to keep it, so that 50 columns hold
# ``acknowledged`` beside the id, the summary and the incident.
ALERT_COLUMNS: tuple[str | TextColumn | WordColumn, ...] = (
    IdColumn("id"),
    WordColumn("status", text_gives=3),
    WordColumn("sev"),
    WordColumn("source", drop=1),
    "summary",
    WordColumn("service", drop=3),
    WordColumn("count", drop=2),
    IdColumn("incident"),
    "last seen",
)


def alert_row(alert: AlertRead) -> tuple[object, ...]:
    return (
        alert.ref,
        _status(alert),
        styled(alert.severity, ALERT_SEVERITY_STYLE),
        alert.source,
        alert.summary,
        alert.service,
        alert.occurrences,
        alert.incident or _nowhere(alert),
        alert.last_seen_at,
    )


def _status(alert: AlertRead) -> Timed:
    """The status, with a snooze's end: an acknowledgement that will not last."""

    def write(at: At) -> Text:
        status = styled(alert.status.value, ALERT_STATUS_STYLE)
        if alert.snoozed_until is not None:
            status.append(f" (snoozed until {at(alert.snoozed_until)})", style="dim")
        return status

    return Timed(write)


def _noted(created: datetime, edited: datetime | None, at: At) -> str:
    return at(created) + (f" (edited {at(edited)})" if edited else "")


def _nowhere(alert: AlertRead) -> Text | None:
    """What the incident column says of an alert on no incident: what holds it now (its window, or the alert
    inhibiting it), else whether it is unrouted. One that its window or inhibitor held and then released
    says so: the hold is over, and it was routed as if it had just fired."""
    if alert.held_by is not None:
        if alert.held_by == alert.inhibited_by:
            return Text(f"inhibited by {alert.held_by}", style="cyan")
        return Text(alert.held_by, style="cyan")
    released = _released(alert, alert.maintenance or alert.inhibited_by)
    if alert.unrouted:
        return Text("unrouted", style="magenta") + Text(" (released)" if released else "", style="dim")
    return Text("released", style="dim") if released else None


def _released(alert: AlertRead, holder: str | None) -> bool:
    """Whether ``holder`` (the alert's window or inhibitor, if any) held the alert and let it go: it holds it
    no more, and the alert was still open (or is on an incident). One that resolved while held, on no
    incident, was never released."""
    return (
        holder is not None
        and alert.held_by != holder
        and (alert.incident is not None or alert.status != AlertStatus.resolved)
    )


def _maintenance(alert: AlertDetail) -> str:
    if alert.maintenance is None:
        return "—"
    if alert.held_by == alert.maintenance:
        return f"arrived during {alert.maintenance}, held until it ends"
    if _released(alert, alert.maintenance):
        return f"arrived during {alert.maintenance}, released"
    return f"arrived during {alert.maintenance}"


def _inhibited(alert: AlertDetail) -> str:
    if alert.inhibited_by is None:
        return "—"
    if alert.held_by == alert.inhibited_by:
        return f"by {alert.inhibited_by}, held until that alert resolves"
    if _released(alert, alert.inhibited_by):
        return f"released (was inhibited by {alert.inhibited_by})"
    return f"was inhibited by {alert.inhibited_by}"


def _started(alert: AlertDetail) -> str:
    """When the source says it began, and how long before it reached us when that is a minute or more (an
    Alertmanager group_wait, a retry after an outage)."""
    assert alert.started_at is not None
    lag = alert.first_seen_at - alert.started_at
    ahead = f" ({format_duration(lag)} before it arrived)" if lag >= timedelta(minutes=1) else ""
    return f"{when(alert.started_at)} by its source{ahead}"


# What ``alerts show`` prints of one label or annotation value, and of a raw payload, at most (``abridged``).
SHOWN_VALUE = 2_000
SHOWN_PAYLOAD = 20_000


def _value(value: object) -> str:
    """An annotation's value as text: a string as it is; anything else (PagerDuty's ``custom_details``, a
    number, true) as JSON, as its sender wrote it (Python's repr read ``{'firing': …}``, ``True``)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def _link(link: dict[str, object]) -> str:
    """A link of an alert, with the image it shows (a PagerDuty image's ``src``, a Grafana screenshot)."""
    href, image = link.get("href"), link.get("image")
    shown = " ".join(str(part) for part in (link.get("text"), href) if part)
    if image is None:
        return f"link: {shown}"
    if image == href:
        return f"image: {shown}"
    return f"link: {shown} (image: {image})"


def _show(alert: AlertDetail) -> None:
    whole = f"warroom alerts show {alert.ref} --json"

    def long(text: str) -> str:
        return abridged(text, SHOWN_VALUE, whole)

    console.print(f"[bold]{alert.ref}[/] {escape(one_line(long(alert.summary)))}")
    rows = [
        ("status", _status(alert)),
        ("severity", styled(alert.severity, ALERT_SEVERITY_STYLE)),
        ("source", alert.source + (f" (integration {alert.integration_id})" if alert.integration_id else "")),
        ("type", one_line(alert.alert_type)),
        ("dedup key", one_line(alert.dedup_key)),
        ("service", one_line(alert.service or "—")),
        ("incident", styled(alert.incident, SEVERITY_STYLE) if alert.incident else _nowhere(alert) or "—"),
        ("rules", ", ".join(alert.rules) or "—"),
        ("maintenance", _maintenance(alert)),
        ("inhibited", _inhibited(alert)),
        ("occurrences", str(alert.occurrences)),
        *([("started", _started(alert))] if alert.started_at is not None else []),
        ("first seen", when(alert.first_seen_at)),
        ("last seen", when(alert.last_seen_at)),
        ("acknowledged", _when_by(alert.acknowledged_at, alert.acknowledged_by)),
        *(
            [("snoozed", f"until {when(alert.snoozed_until)} by {alert.snoozed_by}, then firing again")]
            if alert.snoozed_until is not None
            else []
        ),
        ("resolved", _when_by(alert.resolved_at, alert.resolved_by)),
    ]
    if alert.resolution_note:
        rows.append(("note", alert.resolution_note))
    truncated = alert.raw.get("truncatedAlerts")
    if truncated:
        rows.append(("delivery", f"incomplete: the sender left out {truncated} more alert(s) of the group"))
    console.print(fields_table(None, ("field", "value"), rows))
    if alert.labels:
        console.print(
            fields_table(
                "Labels",
                ("label", "value"),
                [(k, one_line(long(v))) for k, v in sorted(alert.labels.items())],
            )
        )
    if alert.annotations:
        console.print(
            fields_table(
                "Annotations",
                ("name", "value"),
                [(k, long(_value(v))) for k, v in sorted(alert.annotations.items())],
            )
        )
    for link in alert.links:
        console.print(escape(one_line(long(_link(link)))))
    if alert.notes:
        notes = build_table(
            "Notes",
            [IdColumn("#"), "when", WordColumn("by"), TextColumn("note", lines=True)],
            [
                (
                    n.id,
                    Timed(functools.partial(_noted, n.created_at, n.edited_at)),
                    n.author,
                    n.body,
                )
                for n in alert.notes
            ],
            short=False,
        )
        console.print(notes)
    for error in alert.handler_errors:
        error_console.print(
            f"[red]handler {escape(str(error.get('handler')))} failed:[/] {escape(str(error.get('error')))}"
        )


def _payload(alert: AlertDetail, raw: dict[str, object]) -> None:
    """A raw payload as JSON, up to ``SHOWN_PAYLOAD`` characters (``--json`` has all)."""
    text = json.dumps(raw, indent=2, ensure_ascii=False)
    if len(text) <= SHOWN_PAYLOAD:
        console.print_json(json.dumps(raw))
    else:
        console.print(Text(abridged(text, SHOWN_PAYLOAD, f"warroom alerts show {alert.ref} --json")))


def _when_by(moment: datetime | None, person: str | None) -> str:
    """When, and by whom: a person here, or the alert's source (a person is recorded only when it was one)."""
    if moment is None:
        return "—"
    return when(moment) + (f" by {person}" if person else " at its source")


# The filters that choose alerts: shared by ``alerts list`` and the commands that act on many at once.
UnroutedFilter = Annotated[bool, typer.Option("--unrouted", help="Only alerts no rule routed.")]
SourceFilter = Annotated[
    list[str] | None,
    typer.Option("--source", help="Only this source, e.g. alertmanager (repeat for more)."),
]
IncidentFilter = Annotated[
    list[str] | None, typer.Option("--incident", help="Only alerts on this incident (repeat for more).")
]
ServiceFilter = Annotated[
    list[str] | None, typer.Option("--service", help="Only this service (repeat for more).")
]
SeverityFilter = Annotated[
    list[str] | None,
    typer.Option(
        "--severity", "-s", help="Only this severity: critical, error, warning or info (repeatable)."
    ),
]
LabelFilter = Annotated[
    list[str] | None,
    typer.Option("--label", "-l", help="Only alerts carrying this label, as name=value (repeatable)."),
]


@alerts_app.command("list", cls=OnceOnlyCommand)
def list_(
    firing: Annotated[
        bool, typer.Option("--firing", help="Only alerts not yet resolved (firing or acknowledged).")
    ] = False,
    status: Annotated[
        list[AlertStatus] | None,
        typer.Option("--status", help="Only this status: firing, acknowledged or resolved (repeatable)."),
    ] = None,
    unrouted: UnroutedFilter = False,
    snoozed: Annotated[
        bool, typer.Option("--snoozed", help="Only snoozed alerts, with when each fires again.")
    ] = False,
    source: SourceFilter = None,
    integration: Annotated[
        list[str] | None,
        typer.Option(
            "--integration",
            help="Only alerts that came in through this integration (its name; repeat for more).",
        ),
    ] = None,
    incident: IncidentFilter = None,
    service: ServiceFilter = None,
    severity: SeverityFilter = None,
    label: LabelFilter = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Only alerts seen since: how long ago ({DURATION_FORMS}) or a time (2026-12-07T09:00).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--until",
            help="Only alerts seen by then (first seen before it): how long ago (as --since), or a time.",
        ),
    ] = None,
    search: Annotated[
        str | None,
        typer.Option(
            "--search",
            "-q",
            help="Only alerts with this text (any case) in their summary, type, dedup key, service or "
            "labels, e.g. a host name.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    before_id: BeforeIdOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Keep the list on screen and refresh it: new alerts in bold, changed ones (another "
            "occurrence, acknowledged, resolved) in reverse. Ctrl-C ends it.",
        ),
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, max=3600, help="Seconds between refreshes with --watch.")
    ] = 2.0,
    as_json: JsonFlag = False,
) -> None:
    """List alerts, newest first."""
    if watch and as_json:
        usage_error("--watch draws a table; it cannot be combined with --json")
    labels = name_values(label or [], "--label")
    since, until = period_bound(since, "--since"), period_bound(until, "--until")
    older_than = row_number(before_id, "ALR", "--before-id")
    with api_errors(), Client() as client:

        def fetch() -> AlertPage:
            return client.list_alerts(
                labels=[f"{name}={value}" for name, value in labels.items()],
                since=since,
                until=until,
                before_id=older_than,
                search=search,
                firing=firing,
                status=[value.value for value in status or []],
                unrouted=unrouted,
                snoozed=snoozed,
                source=source,
                integration=integration,
                incident=incident,
                service=service,
                severity=severity,
                limit=limit,
                offset=offset,
            )

        if watch:
            _watch(fetch, interval)
            return
        page = fetch()
    emit(as_json, page, lambda: console.print(_alerts_table(page)))


def _alerts_table(
    page: AlertPage, *, row_styles: list[str | None] | None = None, caption: str | None = None
) -> Table:
    return build_table(
        f"Alerts ({len(page.items)} of {page.total})",
        ALERT_COLUMNS,
        [alert_row(a) for a in page.items],
        row_styles=row_styles,
        caption=caption,
    )


# What a refresh draws: an alert page, an overview.
Shown = TypeVar("Shown")

# What a refresh compares to tell a changed alert: another occurrence, or a new status.
AlertState = tuple[AlertStatus, int]


def _state(alert: AlertRead) -> AlertState:
    return alert.status, alert.occurrences


def _watch(fetch: Callable[[], AlertPage], interval: float) -> None:
    """The list, redrawn until Ctrl-C, with what changed since the last refresh marked."""
    before: dict[int, AlertState] | None = None

    def draw(page: AlertPage) -> Table:
        nonlocal before
        shown = _watched_table(page, before, interval)
        before = {alert.id: _state(alert) for alert in page.items}
        return shown

    _keep_drawing(fetch, draw, interval)


def _keep_drawing(
    fetch: Callable[[], Shown], draw: Callable[[Shown], RenderableType], interval: float
) -> None:
    """Redraw what ``fetch`` answers every ``interval`` seconds until Ctrl-C. The server going away for a
    moment (a restart, a network blip) is shown and retried; an answer that will not change by waiting (401,
    403, a bad filter) ends it like a single answer."""
    # Rich's Live draws on a terminal; to a pipe, a file or a dumb terminal (TERM=dumb) it prints the last
    # screen when it stops, so there it is said once that the command runs.
    announced = console.is_terminal and not console.is_dumb_terminal
    with Live(console=console, auto_refresh=False) as live:
        try:
            while True:
                try:
                    value = fetch()
                except ApiError as exc:
                    # What waiting may cure: no answer (a restart, a blip), or a 5xx (a proxy's 502 too).
                    if exc.status < 500 and exc.code not in ("unreachable", "no_answer"):
                        raise
                    live.console.print(f"[yellow]{when(datetime.now())} {escape(exc.message)}; retrying[/]")
                    time.sleep(interval)
                    continue
                live.update(draw(value), refresh=True)
                if not announced:
                    # Output to a file, a pipe or a dumb terminal gets the last screen at Ctrl-C: say, on
                    # stderr, that it runs.
                    error_console.print(f"watching, every {interval:g}s: the last screen prints at Ctrl-C")
                    announced = True
                time.sleep(interval)
        except KeyboardInterrupt:
            pass


def _watched_table(page: AlertPage, before: dict[int, AlertState] | None, interval: float) -> Table:
    styles: list[str | None] = []
    new = changed = 0
    for alert in page.items:
        if before is None:
            styles.append(None)  # the first screen: everything is as it was
        elif alert.id not in before:
            styles.append("bold")
            new += 1
        elif before[alert.id] != _state(alert):
            styles.append("reverse")
            changed += 1
        else:
            styles.append(None)
    caption = f"refreshed {when(datetime.now())}, every {interval:g}s; Ctrl-C to stop"
    if before is not None:
        caption += f"; {new} new, {changed} changed since the last refresh"
    return _alerts_table(page, row_styles=styles, caption=caption)


NOISE_BAR_WIDTH = 12


@alerts_app.command("overview", cls=OnceOnlyCommand)
def overview(
    since: Annotated[
        str, typer.Option("--since", help=f"The period of new alerts charted: {DURATION_FORMS}.")
    ] = "1h",
    watch: Annotated[
        bool, typer.Option("--watch", "-w", help="Keep it on screen and refresh it; Ctrl-C ends it.")
    ] = False,
    interval: Annotated[
        float, typer.Option("--interval", min=0.2, max=3600, help="Seconds between refreshes with --watch.")
    ] = 5.0,
    as_json: JsonFlag = False,
) -> None:
    """What is going on now, at a glance: open alerts by severity, what nobody was paged for, open incidents,
    how fast new alerts arrive, and the loudest alert types. The first thing to run when paged."""
    if watch and as_json:
        usage_error("--watch draws the overview; it cannot be combined with --json")
    with api_errors(), Client() as client:
        if watch:
            _keep_drawing(lambda: client.alert_overview(since=since), _overview_view, interval)
            return
        shown = client.alert_overview(since=since)
    emit(as_json, shown, lambda: console.print(_overview_view(shown)))


def _overview_view(shown: AlertOverview) -> Group:
    firing = sum(row.firing for row in shown.severities)
    acknowledged = sum(row.acknowledged for row in shown.severities)
    headline = Text.assemble(
        (f"{when(shown.at)}  ", "dim"),
        (f"{firing} firing", "bold red" if firing else "green"),
        f", {acknowledged} acknowledged ({shown.snoozed} snoozed), ",
        (f"{shown.unrouted} unrouted", "yellow" if shown.unrouted else ""),
        f", {shown.held} held; {shown.incidents_open} open incident(s)",
    )
    parts: list[RenderableType] = [headline]
    if shown.severities:
        parts.append(
            build_table(
                None,
                [WordColumn("severity"), WordColumn("firing"), WordColumn("acknowledged")],
                [
                    (styled(row.severity, SEVERITY_STYLE), row.firing or "", row.acknowledged or "")
                    for row in shown.severities
                ],
            )
        )
    if shown.incidents:
        parts.append(
            build_table(
                f"Open incidents ({len(shown.incidents)} of {shown.incidents_open})",
                [
                    IdColumn("id"),
                    WordColumn("sev"),
                    WordColumn("status"),
                    WordColumn("ack"),
                    WordColumn("alerts open", drop=1),
                    "title",
                    "opened",
                ],
                [
                    (
                        incident.ref,
                        incident.severity,
                        incident.status,
                        "yes" if incident.acknowledged else Text("no", style="bold red"),
                        incident.alerts_open or "",
                        incident.title,
                        incident.created_at,
                    )
                    for incident in shown.incidents
                ],
            )
        )
    most = max((bucket.alerts for bucket in shown.arrivals), default=0)
    parts.append(
        build_table(
            f"New alerts since {when(shown.since)}",
            ["from", "alerts", ""],
            [
                (bucket.start, bucket.alerts or "", bar(bucket.alerts, most, "magenta", 24))
                for bucket in shown.arrivals
            ],
        )
    )
    if shown.loudest:
        parts.append(
            build_table(
                "Loudest open alert types",
                # The counts are words: the type (free text) takes the cut, rather than all three alike.
                ["type", WordColumn("open alerts"), WordColumn("notifications")],
                [(loud.type, loud.alerts, loud.occurrences) for loud in shown.loudest],
            )
        )
    return Group(*parts)


@alerts_app.command("noise", cls=OnceOnlyCommand)
def noise(
    since: Annotated[str, typer.Option("--since", help=f"The period: {DURATION_FORMS}.")] = "7d",
    by: Annotated[
        str, typer.Option("--by", help="type, service, source, severity, group, integration, or label:NAME.")
    ] = "type",
    limit: Annotated[int, typer.Option(min=1, max=200)] = 20,
    as_json: JsonFlag = False,
) -> None:
    """The noisiest alerts of a period: what to tune (thresholds, rules, maintenance windows) first."""
    with api_errors(), Client() as client:
        report = client.alert_noise(since=since, by=by, limit=limit)

    def render() -> None:
        if not report.groups:
            console.print(f"[dim]no alerts seen since {when(report.since)}[/]")
            return
        loudest = max(group.occurrences for group in report.groups) or 1
        table(
            f"Alert noise by {report.by} since {when(report.since)}",
            [
                report.by,
                WordColumn("notifications"),
                WordColumn("", drop=1),  # the bar: the count beside it says as much
                WordColumn("alerts"),
                WordColumn("incidents"),
                WordColumn("unrouted"),
                WordColumn("open"),
            ],
            [
                (
                    group.key if group.key is not None else Text("(none)", style="dim"),
                    group.occurrences,
                    bar(group.occurrences, loudest, "magenta", NOISE_BAR_WIDTH),
                    group.alerts,
                    group.incidents,
                    group.unrouted or "",
                    group.open or "",
                )
                for group in report.groups
            ],
        )

    emit(as_json, report, render)


@alerts_app.command("show", cls=OnceOnlyCommand)
def show(ref: AlertRef, as_json: JsonFlag = False) -> None:
    """Show one alert, with its labels and what was received."""
    with api_errors(), Client() as client:
        alert = client.get_alert(ref)
    if as_json:
        emit(True, alert, lambda: None)
        return
    _show(alert)
    # Labels and annotations are as first seen; what the source said last is in the latest payload.
    console.print("[dim]raw payload (first):[/]" if alert.last_raw is not None else "[dim]raw payload:[/]")
    _payload(alert, alert.raw)
    if alert.last_raw is not None:
        times = "occurrence" if alert.occurrences == 1 else "occurrences"
        console.print(f"[dim]raw payload (latest, {alert.occurrences} {times}):[/]")
        _payload(alert, alert.last_raw)


@alerts_app.command("promote", cls=OnceOnlyCommand)
def promote(
    ref: AlertRef,
    title: Annotated[str | None, typer.Option(help="Incident title; the alert summary if omitted.")] = None,
    severity: Annotated[
        str | None, typer.Option("--severity", "-s", help="P0..P3; mapped if omitted.")
    ] = None,
    move: Annotated[
        bool,
        typer.Option(
            "--move",
            help="The alert is on an incident with alerts of another cause: take it out into its own.",
        ),
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Promote it though it has resolved (the incident is opened for the record, resolved).",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Open an incident from an alert (one no rule routed; or, with --move, one the grouping put on the
    wrong incident). An alert that has resolved is refused, saying when, unless --force."""
    with api_errors(), Client() as client:
        alert = client.promote_alert(ref, title=title, severity=severity, move=move, force=force)
    emit(as_json, alert, lambda: console.print(f"{alert.ref} promoted to [bold]{alert.incident}[/]"))


def _distinct(refs: list[str]) -> list[str]:
    """``refs`` with each alert once, as first named: ``ack 57 57`` or ``attach INC-3 345 ALR-345`` acted
    twice, and the second time was refused (already acknowledged, already on INC-3), which failed a command
    that had done all it was asked. A ref that names no alert is kept as given (it is refused by name)."""
    seen: dict[int | str, str] = {}
    for ref in refs:
        try:
            key: int | str = parse_row_ref(ref, "ALR", "alert")
        except NotFound:
            key = ref
        seen.setdefault(key, ref)
    return list(seen.values())


def _on_each(
    refs: list[str],
    act: Callable[[Client, str], AlertDetail],
    done: str,
    as_json: bool,
    *,
    chosen: AlertChoice | None = None,
    detail: Callable[[AlertDetail], str] = lambda alert: "",
    already: Callable[[AlertRead], bool] | None = None,
    already_text: str = "",
    options: dict[str, str] | None = None,
) -> None:
    """Apply ``act`` to each alert in turn: one refusal (already resolved, say) does not stop the others,
    but the command fails if any was refused; a refusal of the caller (401, 403) stops at the first. --json
    prints a list of the alerts changed, however many were named (one id printed an object, so a script's
    parsing depended on how many ids it passed).

    With ``chosen`` (filters instead of ids), the matching alerts are looked up, shown and confirmed first,
    and a progress bar stands in for a line per alert. ``already``: a matching alert that is already as the
    command would leave it (``attach``: on the target), left out and counted once (``already_text``), as is
    one the server finds so meanwhile (a 409 marked ``unchanged``): a repeat is no failure. ``options``: the
    request's fields the command's options set (``api_errors``)."""
    changed: list[AlertDetail] = []
    unchanged = 0
    refs = _distinct(refs)
    with api_errors(options), Client() as client:
        if chosen is not None:
            refs = chosen.confirmed(client, done, as_json, already=already, already_text=already_text)
        steps = track(refs, description=done.capitalize(), console=console, disable=chosen is None or as_json)
        for ref in steps:
            try:
                alert = act(client, ref)
            except ApiError as exc:
                if chosen is not None and already is not None and _unchanged(exc):
                    unchanged += 1  # got there meanwhile (another responder, or a rule)
                    continue
                # A refusal of the caller (no token, a role too low) will refuse every other alert too.
                if (len(refs) == 1 and chosen is None) or exc.status in (401, 403):
                    raise
                error_console.print(
                    f"[bold red]error:[/] {escape(_refusal(ref, refusal_text(exc, options)))}"
                )
                continue
            changed.append(alert)
            if not as_json and chosen is None:
                on = f" (on {alert.incident})" if alert.incident else ""
                console.print(f"{alert.ref} {done}{detail(alert)}{on}")
    if as_json:
        print_json(changed)
    elif chosen is not None:
        also = f"; {unchanged} {already_text} meanwhile" if unchanged else ""
        console.print(f"{len(changed)} of {len(refs)} alerts {done}{also}")
    if len(changed) + unchanged < len(refs):
        raise typer.Exit(1)


def _unchanged(exc: ApiError) -> bool:
    """A refusal that says the alert is already as asked (``"unchanged": true`` in its details)."""
    details = exc.details if isinstance(exc.details, list) else []
    return exc.status == 409 and any(isinstance(entry, dict) and entry.get("unchanged") for entry in details)


def _refusal(ref: str, message: str) -> str:
    """The server's refusal of one alert, named once: "ALR-55 is already on INC-5", not "55: ALR-55 …"."""
    try:
        named = f"ALR-{parse_row_ref(ref, 'ALR', 'alert')}"
    except NotFound:
        named = ref
    return message if re.search(rf"\b{re.escape(named)}\b", message) else f"{named}: {message}"


# Alerts acted on by filter: more than this is a mistake in the filter more often than a wish.
MAX_CHOSEN = 5000


@dataclass
class AlertChoice:
    """Alerts chosen by filters (``alerts ack --source email``), among those in ``statuses``."""

    statuses: list[str]
    unrouted: bool = False
    source: list[str] | None = None
    incident: list[str] | None = None
    service: list[str] | None = None
    severity: list[str] | None = None
    labels: dict[str, str] = dataclass_field(default_factory=dict)
    yes: bool = False

    def filters_given(self) -> bool:
        return bool(
            self.unrouted or self.source or self.incident or self.service or self.severity or self.labels
        )

    def matching(self, client: Client) -> list[AlertRead]:
        found: dict[int, AlertRead] = {}
        while True:
            page = client.list_alerts(
                status=self.statuses,
                unrouted=self.unrouted,
                source=self.source,
                incident=self.incident,
                service=self.service,
                severity=self.severity,
                labels=[f"{name}={value}" for name, value in self.labels.items()],
                limit=500,
                offset=len(found),
            )
            if page.total > MAX_CHOSEN:
                fail(f"{page.total} alerts match, more than {MAX_CHOSEN}; narrow the filters")
            found.update((alert.id, alert) for alert in page.items)
            if not page.items or len(found) >= page.total:
                return list(found.values())

    def confirmed(
        self,
        client: Client,
        done: str,
        as_json: bool,
        *,
        already: Callable[[AlertRead], bool] | None = None,
        already_text: str = "",
    ) -> list[str]:
        """The refs of the matching alerts, once shown and confirmed (``--yes`` skips the question). Those
        ``already`` as the command would leave them are left out, and said so once."""
        alerts = self.matching(client)
        if not alerts:
            if as_json:
                print_json([])
            else:
                console.print(f"no {' or '.join(self.statuses)} alert matches")
            raise typer.Exit(0)
        if already is not None:
            there = [alert for alert in alerts if already(alert)]
            alerts = [alert for alert in alerts if not already(alert)]
            if there and not as_json:
                console.print(
                    f"{len(there)} matching alert{'s' if len(there) > 1 else ''} {already_text}, left out"
                )
            if not alerts:
                if as_json:
                    print_json([])
                raise typer.Exit(0)
        matches: Table | None = None
        if not as_json:
            shown = AlertPage(items=alerts[:20], total=len(alerts), limit=20, offset=0)
            matches = _alerts_table(shown)
        if self.yes:
            if matches is not None:
                console.print(matches)
        else:
            # Shown where the question is asked: on the terminal when the output goes to a file.
            go_on(f"{len(alerts)} alerts will be {done}. Go on?", as_json=as_json, shown=matches)
        return [str(alert.id) for alert in alerts]


def _choice(
    refs: list[str] | None,
    statuses: list[str],
    *,
    unrouted: bool,
    source: list[str] | None,
    incident: list[str] | None,
    service: list[str] | None,
    severity: list[str] | None,
    label: list[str] | None,
    yes: bool,
) -> AlertChoice | None:
    """None when alerts are named by id; the filters' choice otherwise. Both, or neither, is refused."""
    choice = AlertChoice(
        statuses,
        unrouted=unrouted,
        source=source,
        incident=incident,
        service=service,
        severity=severity,
        labels=name_values(label or [], "--label"),
        yes=yes,
    )
    if refs and choice.filters_given():
        usage_error("name alerts by id or choose them with filters, not both")
    if not refs and not choice.filters_given():
        usage_error("name the alerts: ids (12 or ALR-12), or filters such as --source, --service or --label")
    return None if refs else choice


YesFlag = Annotated[
    bool, typer.Option("--yes", "-y", help="With filters: act without asking (the matches are still shown).")
]


def _filter_options(
    unrouted: UnroutedFilter = False,
    source: SourceFilter = None,
    incident: IncidentFilter = None,
    service: ServiceFilter = None,
    severity: SeverityFilter = None,
    label: LabelFilter = None,
    yes: YesFlag = False,
) -> None:
    """Only a signature: the options with which a command chooses alerts by filter (see ``by_filter``)."""


def by_filter(*statuses: AlertStatus) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Let a command that acts on alerts (``refs: ChosenAlertRefs``) choose them by filter instead, among
    alerts in ``statuses``: the filter options and ``--yes`` join its own, and it receives ``chosen``, the
    confirmed choice (None when ids were given)."""

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        own = inspect.signature(command, eval_str=True)
        filters = inspect.signature(_filter_options, eval_str=True).parameters

        @functools.wraps(command)
        def with_filters(**options: object) -> None:
            chosen = {name: options.pop(name) for name in filters}
            refs = options["refs"]
            assert refs is None or isinstance(refs, list)
            command(**options, chosen=_choice(refs, [status.value for status in statuses], **chosen))  # type: ignore[arg-type]

        # Typer reads the options from the signature: the command's own, less ``chosen``, then the filters'.
        kept = [parameter for name, parameter in own.parameters.items() if name != "chosen"]
        with_filters.__signature__ = own.replace(parameters=[*kept, *filters.values()])  # type: ignore[attr-defined]
        return with_filters

    return decorate


AlertRefs = Annotated[
    list[str], typer.Argument(help="Alert ids, e.g. 12 or ALR-12; several are done in turn.")
]
ChosenAlertRefs = Annotated[
    list[str] | None,
    typer.Argument(
        help="Alert ids, e.g. 12 or ALR-12; several are done in turn. Or choose them with filters."
    ),
]


@alerts_app.command("attach", cls=OnceOnlyCommand)
@by_filter(AlertStatus.firing, AlertStatus.acknowledged)
def attach(
    target: Annotated[str, typer.Argument(metavar="INCIDENT", help="The open incident, e.g. INC-3.")],
    refs: ChosenAlertRefs = None,
    chosen: AlertChoice | None = None,
    as_json: JsonFlag = False,
) -> None:
    """Put alerts on an open incident by hand (their cause is shared though the grouping did not see it);
    alerts on another incident move, and both timelines say so. With filters instead of ids, every alert
    they match that is not resolved, once you confirm (`--label host=db-1`: the host's alerts, wherever the
    grouping put them)."""
    try:
        on_target: str | None = f"INC-{parse_row_ref(target, 'INC', 'incident')}"
    except NotFound:
        on_target = None  # the server refuses it by name
    _on_each(
        refs or [],
        lambda client, ref: client.attach_alert(ref, target),
        "attached",
        as_json,
        chosen=chosen,
        already=(lambda alert: alert.incident == on_target) if on_target is not None else None,
        already_text=f"already on {on_target}",
    )


@alerts_app.command("ack", cls=OnceOnlyCommand)
@by_filter(AlertStatus.firing)
def acknowledge(
    refs: ChosenAlertRefs = None, chosen: AlertChoice | None = None, as_json: JsonFlag = False
) -> None:
    """Acknowledge alerts by hand: someone is on them. When the last alert of an incident still firing is
    acknowledged, the incident is acknowledged too (which stops escalation), as when sources acknowledge.
    With filters instead of ids, every firing alert they match, once you confirm."""
    _on_each(
        refs or [], lambda client, ref: client.acknowledge_alert(ref), "acknowledged", as_json, chosen=chosen
    )


@alerts_app.command("unack", cls=OnceOnlyCommand)
def unacknowledge(refs: AlertRefs, as_json: JsonFlag = False) -> None:
    """Take an acknowledgement back: the alerts are firing again (their incidents' timelines say so)."""
    _on_each(refs, lambda client, ref: client.unacknowledge_alert(ref), "unacknowledged: firing", as_json)


@alerts_app.command("snooze", cls=OnceOnlyCommand)
@by_filter(AlertStatus.firing, AlertStatus.acknowledged)
def snooze(
    refs: ChosenAlertRefs = None,
    chosen: AlertChoice | None = None,
    duration: ForOption = None,
    until: UntilOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Acknowledge alerts until a moment (1 minute to 7 days ahead): if one still fires then, it fires again
    and its incident's first responders are paged as a reminder. Snoozing again moves the end; `alerts unack`
    ends it now. With filters instead of ids, every alert they match that is not resolved, once you
    confirm."""
    end = one_end(duration, until)
    # Asked first, so that a snooze too long (or too short) is refused once, not once per alert chosen.
    try:
        asked = SnoozeRequest.model_validate({"duration": duration, "until": end})
        snooze_end(datetime.now(UTC), duration=asked.duration, until=asked.until)
    except ValidationError as exc:
        usage_error(f"--for: {validation_message(exc.errors()[0])}")
    except InvalidInput as exc:
        usage_error(exc.message)
    _on_each(
        refs or [],
        lambda client, ref: client.snooze_alert(ref, duration=duration, until=end),
        "snoozed",
        as_json,
        chosen=chosen,
        detail=lambda alert: f" until {when(alert.snoozed_until)}" if alert.snoozed_until else "",
    )


@alerts_app.command("resolve", cls=OnceOnlyCommand)
@by_filter(AlertStatus.firing, AlertStatus.acknowledged)
def resolve(
    refs: ChosenAlertRefs = None,
    chosen: AlertChoice | None = None,
    note: Annotated[str | None, typer.Option(help="Why, for the record (on the timeline).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Resolve alerts by hand, when their source will not (it stopped sending, or never sends a resolve).
    The next firing with the same dedup key opens a new alert. With filters instead of ids, every alert they
    match that is not resolved, once you confirm: the clean-up after a storm."""
    if note is not None and not note.strip():
        usage_error("--note must not be blank")
    _on_each(
        refs or [],
        lambda client, ref: client.resolve_alert(ref, note=note),
        "resolved",
        as_json,
        chosen=chosen,
    )


@alerts_app.command("note", cls=OnceOnlyCommand)
@by_filter(AlertStatus.firing, AlertStatus.acknowledged)
def note(
    refs: ChosenAlertRefs = None,
    chosen: AlertChoice | None = None,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="The note: what you found, why it can wait.")
    ] = None,
    edit: Annotated[
        int | None,
        typer.Option("--edit", min=1, help="Correct this note (its number in 'alerts show') instead."),
    ] = None,
    delete: Annotated[
        int | None, typer.Option("--delete", min=1, help="Take this note back (yours, or any as an admin).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write a note on alerts; 'alerts show' lists them, and an alert's incident gets it on its timeline.
    Several alerts get the same note (they share a cause); with filters instead of ids, every alert they match
    that is not resolved, once you confirm. --edit N corrects note N of one alert, --delete N takes it back:
    your own notes, or any as an admin; the incident's timeline keeps what it said."""
    if edit is not None and delete is not None:
        usage_error("give --edit or --delete, not both")
    if (edit is not None or delete is not None) and (chosen is not None or len(refs or []) != 1):
        usage_error("--edit and --delete change a note of one alert: name one")
    refs = refs or []
    if delete is not None:
        if message is not None:
            usage_error("--delete takes no --message")
        _on_each(refs, lambda client, ref: client.delete_alert_note(ref, delete), "note taken back", as_json)
        return
    if message is None:
        # As click words a missing option ("Missing option '--name'"): "must not be blank" read as though
        # an empty -m had been given.
        usage_error("Missing option '--message' / '-m': the note's text")
    if not message.strip():
        usage_error("--message must not be blank")
    if edit is not None:
        _on_each(
            refs,
            lambda client, ref: client.edit_alert_note(ref, edit, message),
            "note corrected",
            as_json,
            options=MESSAGE_OPTION,
        )
        return
    _on_each(
        refs,
        lambda client, ref: client.note_alert(ref, message),
        "noted",
        as_json,
        chosen=chosen,
        options=MESSAGE_OPTION,
    )


# The note's text is the request's ``body``, which no one typing `alerts note -m` named.
MESSAGE_OPTION = {"body": "--message"}


HEARTBEAT_STYLE = {
    "ok": "green",
    "late": "yellow",
    "watching": "yellow",
    "missed": "bold red",
    "failed": "bold red",
    "running": "cyan",
    "never pinged": "dim",
}


def _run(heartbeat: HeartbeatRead) -> Timed | str | None:
    """The run going on now, else how long the last one took (for senders that signal /start). A run that
    started after a failed one leaves the state ``failed`` (the failure stands until a run succeeds): the
    cell says a run is going on."""
    started = heartbeat.started_at
    if started is not None:
        running = "since" if heartbeat.state == "running" else "running since"
        return Timed(lambda at: f"{running} {at(started)}")
    return f"took {format_duration(heartbeat.last_run)}" if heartbeat.last_run is not None else None


def heartbeats(as_json: JsonFlag = False) -> None:
    """Heartbeats (dead man's switches) of the org file: when each last pinged, and whether it is missed or
    its sender reported a failed run."""
    with api_errors(), Client() as client:
        rows = client.list_heartbeats()
    emit(
        as_json,
        rows,
        lambda: table(
            "Heartbeats",
            # In 80 columns the counts and settings are left out first: state, last ping and due by tell
            # whether a job reported in.
            [
                WordColumn("name"),
                WordColumn("state"),
                WordColumn("every", drop=4),
                WordColumn("grace", drop=2),
                WordColumn("service", drop=5),
                WordColumn("pings", drop=1),
                "last ping",
                WordColumn("exit", drop=3),
                WordColumn("last run", drop=6),
                "due by",
            ],
            [
                (
                    h.name,
                    styled(h.state, HEARTBEAT_STYLE),
                    format_duration(h.interval),
                    format_duration(h.grace),
                    h.service,
                    h.pings,
                    h.last_ping_at,
                    h.last_exit_status,
                    _run(h),
                    h.due_at,
                )
                for h in rows
            ],
        ),
    )


def report(
    description: Annotated[
        str, typer.Argument(help="What you found, first line as the summary; - reads it from stdin.")
    ],
    service: Annotated[str | None, typer.Option(help="Affected service.")] = None,
    severity: Annotated[str, typer.Option(help="critical, error, warning or info.")] = "warning",
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", help="A label for the rules, as KEY=VALUE (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Report something you discovered; it becomes an alert routed by the automation rules."""
    labels = name_values(label or [], "--label", "KEY=VALUE")
    if description == "-":  # as config test-alert reads a payload: a command's output piped in
        try:
            description = sys.stdin.buffer.read().decode("utf-8")
        except UnicodeDecodeError as exc:
            usage_error(f"stdin is not UTF-8 text ({exc.reason} at byte {exc.start})")
    if not description.strip():
        usage_error("the description must not be blank")
    with api_errors(), Client() as client:
        alert = client.report(description, service=service, severity=severity, labels=labels)
    emit(
        as_json,
        alert,
        lambda: console.print(
            f"reported as {alert.ref}" + (f", on {alert.incident}" if alert.incident else " (unrouted)")
        ),
    )


# --- admin: integration keys (local database, like ``token create``) ---------------------------------


@contextmanager
def _local_session(
    database_url: str | None, *, write: bool = True, explain: Callable[[WarroomError], str] | None = None
) -> Iterator[Session]:
    """A session on the local database for the admin commands. A refusal (a ``WarroomError``) ends the
    command with its message, reworded by ``explain`` if given; nothing it began is committed."""
    from warroom.cli.main import _database, _settings

    database = _database(_settings(database_url=database_url), read_only=not write)
    try:
        with database.write() if write else database.read() as session:
            yield session
    except WarroomError as exc:
        fail(explain(exc) if explain is not None else exc.message)
    finally:
        database.dispose()


SignatureHeaderOption = Annotated[
    str | None,
    typer.Option(
        help="Signing integrations: the header the contact point sends the signature in, if not Grafana's "
        "(below)."
    ),
]
TimestampHeaderOption = Annotated[
    str | None,
    typer.Option(
        help="Signing integrations: the contact point's timestamp header, if not Grafana's (below)."
    ),
]
ServiceOption = Annotated[
    str | None,
    typer.Option(
        help="A service of the org file: the service of this source's alerts and changes that name none "
        "(and of Alertmanager alerts that only have a job label)."
    ),
]
OrgFileOption = Annotated[
    Path | None,
    typer.Option("--config", help="The YAML org file that --service is checked against (WARROOM_CONFIG)."),
]


def _org_for(service: str | None, config: Path | None) -> OrgConfig:
    """The org file to check a --service against; read only when one is given, so a key can be made
    without one."""
    from warroom.cli.main import _org, _settings

    if service is None:
        return OrgConfig()
    settings = _settings(config=config)
    if settings.config is None:
        usage_error("--service: give --config FILE (or set WARROOM_CONFIG): the org file names the services")
    return _org(settings)


# The integration commands' options, by the service's field names: a refusal names the option to fix.
_INTEGRATION_OPTIONS = {
    "name": "--name",
    "service": "--service",
    "signing": "--signing-secret",
    # It may have come from the environment, unnoticed.
    "signing_secret": "--signing-secret-value (or WARROOM_INTEGRATION_SIGNING_SECRET)",
    "signature_header": "--signature-header",
    "timestamp_header": "--timestamp-header",
    "grace": "--grace",
}


def _options_named(exc: WarroomError) -> str:
    """The service's refusal with its fields named as the options that set them."""
    message = exc.message
    for field, option in _INTEGRATION_OPTIONS.items():
        if "_" in field:  # unambiguous in prose: every mention is the field
            message = re.sub(rf"\b{field}\b", option, message)
    at_fault = field_at_fault(exc.details)
    option_at_fault = _INTEGRATION_OPTIONS.get(at_fault) if at_fault is not None else None
    if option_at_fault is not None and option_at_fault not in message:
        named = re.sub(rf"\b{at_fault}\b", option_at_fault, message, count=1)
        message = named if named != message else f"{option_at_fault}: {message}"
    return message


@integration_app.command("create", cls=OnceOnlyCommand, epilog=GRAFANA_HEADERS_EPILOG)
def integration_create(
    name: Annotated[str, typer.Option(help="The source, e.g. prometheus.")],
    type_: Annotated[
        IntegrationType,
        typer.Option(
            "--type",
            metavar="TYPE",  # the help names them: listed here too, they left the help a narrow column
            help="alertmanager, grafana, pagerduty, generic, heartbeat, email, opsgenie or webhook (a tool's "
            "own JSON, read by a webhook format of the org file).",
        ),
    ],
    service: ServiceOption = None,
    signing_secret: Annotated[
        bool,
        typer.Option(
            "--signing-secret",
            help="grafana and webhook only: generate an HMAC signing secret (printed once, before the key); "
            "deliveries must then be signed with it.",
        ),
    ] = False,
    signing_secret_value: SigningSecretValue = None,
    signature_header: SignatureHeaderOption = None,
    timestamp_header: TimestampHeaderOption = None,
    config: OrgFileOption = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an integration key; the key is printed alone on the last line (with --json: in "key", once).

    With --signing-secret, the generated secret is printed first on a line of its own, labelled
    "signing secret:" (with --json: in "signing_secret"). The signing secret is stored as given, since the
    server needs it to check signatures.
    """
    from warroom.auth import integrations

    if signing_secret and signing_secret_value is not None:
        usage_error("give either --signing-secret (generate one) or --signing-secret-value, not both")
    signing = signing_secret or signing_secret_value is not None
    org = _org_for(service, config)
    with _local_session(database_url, explain=_options_named) as session:
        created = integrations.create_integration(
            session,
            org=org,
            name=name,
            type=type_,
            service=service,
            signing=signing,
            signing_secret=signing_secret_value,
            signature_header=signature_header,
            timestamp_header=timestamp_header,
        )
    if as_json:
        print_json(created)
        return
    error_console.print(
        escape(
            f"Created {created.type.value} integration {created.name!r} (id {created.id}"
            + (f", service {created.service}" if created.service else "")
            + "). "
            + ("Its signing secret and key are" if signing_secret else "The key is")
            + " shown only once:"
        )
    )
    if signing_secret:
        typer.echo(f"signing secret: {created.signing_secret}")
    elif signing:
        error_console.print("Deliveries must be signed with the signing secret you gave.")
    if created.type == IntegrationType.email:
        error_console.print(
            "Its address is <key>@ any domain that reaches the mail intake (warroom serve --mail-port)."
        )
    elif created.type == IntegrationType.webhook:
        error_console.print(
            "The tool posts to /api/v1/alerts/webhook/<format>?key=<key>, <format> being one of the org "
            "file's automation.webhook_formats."
        )
    elif created.type == IntegrationType.opsgenie:
        error_console.print(
            "Point the tool's Opsgenie API URL at this server (POST /v2/alerts); the key is its API key "
            "(Authorization: GenieKey <key>)."
        )
    typer.echo(created.key)


def _signing_shown(integration: IntegrationRead, at: At = when) -> str:
    if not integration.signing:
        return ""
    custom = [name for name in (integration.signature_header, integration.timestamp_header) if name]
    shown = "hmac" + (f" ({', '.join(custom)})" if custom else "")
    if integration.previous_headers_valid_until is not None:
        shown += f"; old header names until {at(integration.previous_headers_valid_until)}"
    return shown


def _rotation_shown(row: IntegrationRead, at: At = when) -> str:
    """When the key was replaced and, while the replaced key still works, until when and its last use."""
    shown = at(row.rotated_at) if row.rotated_at else ""
    if row.previous_valid_until is None:
        return shown
    old_key = f"old key until {at(row.previous_valid_until)}"
    if row.previous_key_last_used_at is not None:
        old_key += f", last used {at(row.previous_key_last_used_at)}"
    return f"{shown} ({old_key})"


@integration_app.command("list", cls=OnceOnlyCommand)
def integration_list(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="The org file (WARROOM_CONFIG) to check each default service against; without one, none is "
            "checked.",
        ),
    ] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List integration keys (never the keys themselves). With an org file, a default service the file no
    longer has is flagged: nothing routes on it. A name several live integrations share (made before names
    had to be unique) is warned of."""
    from warroom.auth import integrations
    from warroom.cli.main import _org, _settings

    settings = _settings(config=config)
    org = _org(settings) if settings.config is not None else None
    with _local_session(database_url, write=False) as session:
        rows = integrations.list_integrations(session, org)
    lost = integrations.with_lost_service(rows)
    emit(
        as_json,
        rows,
        lambda: table(
            "Integrations",
            # In 80 columns what was set up once is left out first: which key is in use, by what, and
            # whether it was revoked stay.
            [
                IdColumn("id"),
                WordColumn("name"),
                WordColumn("type", drop=6),
                WordColumn("service", drop=5),
                WordColumn("prefix", drop=2),
                TextColumn("signed", drop=4),
                WordColumn("created", drop=1),
                WordColumn("last used"),
                WordColumn("rotated", drop=3),
                WordColumn("revoked"),
            ],
            [
                (
                    r.id,
                    r.name,
                    r.type.value,
                    _service_shown(r),
                    r.prefix + "…",
                    Timed(functools.partial(_signing_shown, r)),
                    r.created_at,
                    r.last_used_at or Text("never", style="dim"),
                    Timed(functools.partial(_rotation_shown, r)),
                    r.revoked_at or "",
                )
                for r in rows
            ],
        ),
    )
    for row in lost if not as_json else []:
        error_console.print(escape(integrations.lost_service_warning(row)), style="yellow")
    for name, ids in integrations.shared_names(rows).items() if not as_json else []:
        error_console.print(escape(integrations.shared_name_warning(name, ids)), style="yellow")


def _service_shown(row: IntegrationRead) -> Text | str:
    if row.service is None:
        return ""
    if row.service_known is False:
        return Text(f"{row.service} (not in the org file)", style="yellow")
    return row.service


@integration_app.command("revoke", cls=OnceOnlyCommand)
def integration_revoke(
    integration_id: RowIdArgument,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Revoke an integration key by id; its source gets 401 from then on."""
    from warroom.auth import integrations

    with _local_session(database_url) as session:
        row = integrations.revoke_integration(session, org=None, integration_id=integration_id)
    if row.unchanged:
        said = f"integration {row.id} ({row.name}) was already revoked (at {when(row.revoked_at)})"
    else:
        said = f"revoked integration {row.id} ({row.name})"
    emit(as_json, row, lambda: console.print(escape(said)))


@integration_app.command("update", cls=OnceOnlyCommand, epilog=GRAFANA_HEADERS_EPILOG)
def integration_update(
    integration_id: RowIdArgument,
    name: Annotated[str | None, typer.Option(help="A new name.")] = None,
    service: ServiceOption = None,
    no_service: Annotated[
        bool, typer.Option("--no-service", help="Remove the default service: alerts keep what they name.")
    ] = False,
    signature_header: SignatureHeaderOption = None,
    timestamp_header: TimestampHeaderOption = None,
    default_headers: Annotated[
        bool,
        typer.Option(
            "--default-headers", help="Signing integrations: go back to Grafana's default header names."
        ),
    ] = False,
    grace: Annotated[
        str | None,
        typer.Option(
            help="When header names change: how long deliveries signed under the old names are still "
            f"accepted while the contact point is changed ({DURATION_FORMS}; default 1h); 0s stops at once.",
        ),
    ] = None,
    config: OrgFileOption = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rename an integration, set its default service, or change the header names it reads a signature
    from; its key, signing secret and open alerts stay. Deliveries signed under the old header names are
    still accepted for --grace, so the contact point can be changed afterwards."""
    from pydantic import ValidationError

    from warroom.auth import integrations

    if default_headers and (signature_header is not None or timestamp_header is not None):
        usage_error("give either --default-headers or header names, not both")
    if no_service and service is not None:
        usage_error("give either --service or --no-service, not both")
    fields: dict[str, str | None] = {}
    if name is not None:
        fields["name"] = name
    if service is not None or no_service:
        fields["service"] = service
    if default_headers:
        fields.update(signature_header=None, timestamp_header=None)
    if signature_header is not None:
        fields["signature_header"] = signature_header
    if timestamp_header is not None:
        fields["timestamp_header"] = timestamp_header
    if not fields:
        usage_error(
            "nothing to change: give --name, --service, --no-service, --signature-header, --timestamp-header "
            "or --default-headers"
        )
    if grace is not None:
        fields["grace"] = grace
    try:
        changes = integrations.IntegrationUpdate.model_validate(fields)
    except ValidationError as exc:
        usage_error(
            "; ".join(f"--{'-'.join(map(str, e['loc']))}: {validation_message(e)}" for e in exc.errors())
        )
    org = _org_for(service, config)
    with _local_session(database_url, explain=_options_named) as session:
        updated = integrations.update_integration(
            session, org=org, integration_id=integration_id, changes=changes
        )
    if as_json:
        print_json(updated)
        return
    console.print(escape(f"updated {updated.type.value} integration {updated.id} ({updated.name})"))
    if "service" in fields:
        console.print(
            escape(f"default service: {updated.service}")
            if updated.service
            else "no default service: alerts keep the service they name"
        )
    if updated.signing:
        console.print(
            f"signature header: {updated.signature_header or 'X-Grafana-Alerting-Signature'}; "
            f"timestamp header: {updated.timestamp_header or 'X-Grafana-Alerting-Signature-Timestamp'}"
        )
        if updated.previous_headers_valid_until is not None:
            console.print(
                "deliveries signed under the previous names "
                f"({updated.previous_signature_header or 'X-Grafana-Alerting-Signature'}, "
                f"{updated.previous_timestamp_header or 'X-Grafana-Alerting-Signature-Timestamp'}) are "
                f"accepted until {when(updated.previous_headers_valid_until)}: change the contact point "
                "by then"
            )


@integration_app.command("rotate", cls=OnceOnlyCommand)
def integration_rotate(
    integration_id: RowIdArgument,
    grace: Annotated[
        str,
        typer.Option(
            help="How long the replaced key (and signing secret) keep working while the source's "
            f"configuration is updated ({DURATION_FORMS}; at most 7d). 0s ends them at once (a leaked key).",
        ),
    ] = "1h",
    signing_secret_value: SigningSecretValue = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="SQLAlchemy URL.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Give an integration a new key (and signing secret); the new key is printed alone on the last line
    (with --json: in "key", once, and the signing secret in "signing_secret").

    The integration keeps its id and its open alerts: deliveries with the new key update and resolve them.
    """
    from pydantic import TypeAdapter, ValidationError

    from warroom.auth import integrations
    from warroom.durations import RequestDuration
    from warroom.fields import validation_message

    try:
        grace_period = TypeAdapter(RequestDuration).validate_python(grace)
    except ValidationError as exc:
        usage_error(f"--grace: {validation_message(exc.errors()[0])}")

    with _local_session(database_url, explain=_options_named) as session:
        rotated = integrations.rotate_integration(
            session,
            org=None,  # what it prints needs no org file
            integration_id=integration_id,
            grace=grace_period,
            signing_secret=signing_secret_value,
        )
    if as_json:
        print_json(rotated)
        return
    if rotated.previous_valid_until is not None:
        old = "the old key and signing secret work" if rotated.signing else "the old key works"
        until = f"{old} until {when(rotated.previous_valid_until)}"
    else:
        until = "the old key no longer works"
    error_console.print(
        escape(
            f"Rotated {rotated.type.value} integration {rotated.name!r} (id {rotated.id}); {until}. "
            + ("Its new signing secret and key are" if rotated.signing else "The new key is")
            + " shown only once:"
        )
    )
    if rotated.signing and signing_secret_value is None:
        typer.echo(f"signing secret: {rotated.signing_secret}")
    typer.echo(rotated.key)
