"""``warroom maintenance``: plan, list, show and end maintenance windows (client, HTTP)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.markup import escape

from warroom.alerts.schemas import MaintenanceRead
from warroom.cli.alerts import ALERT_COLUMNS, alert_row
from warroom.cli.helptext import DURATION_FORMS, WindowRef
from warroom.cli.output import (
    ForOption,
    IdColumn,
    UntilOption,
    WordColumn,
    api_errors,
    console,
    emit,
    instant,
    name_values,
    one_end,
    one_line,
    styled,
    table,
    usage_error,
    when,
)
from warroom.cli.parsing import OnceOnlyCommand, now_moved_by
from warroom.client import Client

maintenance_app = typer.Typer(
    help="Maintenance windows: alerts they cover are recorded but not acted on until they end (client).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
STATE_STYLE = {"active": "bold yellow", "scheduled": "cyan", "ended": "dim", "cancelled": "dim"}


def _covers(window: MaintenanceRead) -> str:
    match = window.match
    parts = []
    if window.services:
        parts.append("services " + ", ".join(window.services))
    labels = [f"{k}={v}" for k, v in sorted(window.labels.items())]
    labels += [f"{k}=~{v}" for k, v in sorted(match.labels_regex.items())]
    labels += [f"no {name}" for name in match.labels_missing]
    if labels:
        parts.append("labels " + ", ".join(labels))
    for name, values in (
        ("sources", match.source),
        ("severities", match.severity),
        ("types", match.type),
        ("integrations", match.integrations),
    ):
        if values:
            parts.append(f"{name} " + ", ".join(values))
    return "; ".join(parts)


def _state(window: MaintenanceRead) -> str:
    style = STATE_STYLE[window.state]
    return f"[{style}]{window.state}[/]"


def _span_times(window: MaintenanceRead) -> tuple[datetime | None, datetime | None]:
    """When it runs: for a cancelled window, when it was planned to (its own ends are both the cancelling;
    none for one cancelled before the plan was kept)."""
    if window.state == "cancelled":
        return window.planned_starts_at, window.planned_ends_at
    return window.starts_at, window.ends_at


def _span(window: MaintenanceRead) -> tuple[str, str]:
    starts, ends = _span_times(window)
    return when(starts), when(ends)


def _cancelled(window: MaintenanceRead) -> str:
    return f"cancelled at {when(window.ends_at)}" + (f" by {window.ended_by}" if window.ended_by else "")


def _start(at: str | None) -> str | None:
    """``--at``: an ISO 8601 time, or ``+DURATION`` from now (``+2h``): a README example or a script that
    never goes out of date."""
    if at is None or not at.strip().startswith("+"):
        return instant(at, "--at")
    ahead = at.strip()[1:]
    if not ahead.strip():
        raise typer.BadParameter("'+' needs a duration after it, like +2h", param_hint="--at")
    return now_moved_by(ahead, "--at", sign=1, otherwise="give an ISO 8601 time or +DURATION, e.g. +2h")


def _summary(window: MaintenanceRead) -> str:
    starts, ends = _span(window)
    span = f"from {starts} to {ends}"
    if window.state == "cancelled":
        span = f"planned {span}, {_cancelled(window)}"
    reason = escape(one_line(window.reason))
    return f"{window.ref} {_state(window)}: {escape(_covers(window))}, {escape(span)} ({reason})"


@maintenance_app.command("start", cls=OnceOnlyCommand)
def start(
    reason: Annotated[str, typer.Option("--reason", "-r", help="What is being done (shown on incidents).")],
    service: Annotated[
        list[str] | None, typer.Option("--service", help="A service it covers (repeatable).")
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", help="Alerts must carry this label, as name=value (repeatable)."),
    ] = None,
    label_regex: Annotated[
        list[str] | None,
        typer.Option(
            "--label-regex", help="A label must fully match this regex, as name=REGEX (repeatable)."
        ),
    ] = None,
    label_missing: Annotated[
        list[str] | None,
        typer.Option("--label-missing", help="Alerts must not carry this label (repeatable)."),
    ] = None,
    source: Annotated[
        list[str] | None,
        typer.Option("--source", help="Only alerts from this source, e.g. alertmanager (repeatable)."),
    ] = None,
    severity: Annotated[
        list[str] | None,
        typer.Option("--severity", help="Only alerts of this severity: critical, error, warning, info."),
    ] = None,
    alert_type: Annotated[
        list[str] | None, typer.Option("--type", help="Only alerts of this type, e.g. an alertname.")
    ] = None,
    integration: Annotated[
        list[str] | None,
        typer.Option("--integration", help="Only alerts that came in through this integration (its name)."),
    ] = None,
    duration: ForOption = None,
    until: UntilOption = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Start time, ISO 8601, or +DURATION from now (+2h, +1d); default now; up to 90 days ahead.",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Start (or schedule) a maintenance window, of up to 7 days. Alerts it covers open no incident and page
    nobody; those still open when it ends are routed then."""
    ends_at = one_end(duration, until)
    match = {
        "source": source,
        "severity": severity,
        "type": alert_type,
        "labels_regex": name_values(label_regex or [], "--label-regex", "name=REGEX") or None,
        "labels_missing": label_missing,
        "integrations": integration,
    }
    match = {name: value for name, value in match.items() if value}
    if not service and not label and not match:
        usage_error(
            "say what the window covers: --service, --label, --label-regex, --label-missing, --source, "
            "--severity, --type or --integration"
        )
    with api_errors(), Client() as client:
        window = client.create_maintenance(
            reason=reason,
            services=service or [],
            labels=name_values(label or [], "--label"),
            match=match,
            starts_at=_start(at),
            ends_at=ends_at,
            duration=duration,
        )
    emit(as_json, window, lambda: console.print(_summary(window)))


@maintenance_app.command("list", cls=OnceOnlyCommand)
def list_(
    include_ended: Annotated[bool, typer.Option("--all", help="Include windows that ended.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Scheduled and active maintenance windows; with --all, ended and cancelled ones too (a cancelled one
    with the times it was planned for)."""
    with api_errors(), Client() as client:
        windows = client.list_maintenance(include_ended=include_ended)
    emit(
        as_json,
        windows,
        lambda: table(
            "Maintenance windows",
            [
                IdColumn("id"),
                WordColumn("state"),
                "covers",
                "starts",
                "ends",
                "reason",
                WordColumn("by", drop=1),
            ],
            [
                (
                    w.ref,
                    styled(w.state, STATE_STYLE),
                    _covers(w),
                    *_span_times(w),
                    w.reason,
                    w.created_by
                    + (
                        f" ({_cancelled(w)})"
                        if w.state == "cancelled"
                        else f" (ended by {w.ended_by})"
                        if w.ended_by
                        else ""
                    ),
                )
                for w in windows
            ],
        ),
    )


@maintenance_app.command("show", cls=OnceOnlyCommand)
def show(ref: WindowRef, as_json: JsonFlag = False) -> None:
    """One window, with the alerts that arrived during it."""
    with api_errors(), Client() as client:
        window = client.get_maintenance(ref)
    if as_json:
        emit(True, window, lambda: None)
        return
    console.print(_summary(window))
    if window.released_at and window.state != "cancelled":  # a cancelled one held nothing to route
        console.print(f"held alerts still open were routed at {when(window.released_at)}")
    if window.alerts:
        table(
            f"Alerts that arrived during {window.ref}",
            ALERT_COLUMNS,
            [alert_row(alert) for alert in window.alerts],
        )
    else:
        console.print("[dim]no alerts arrived during it[/]")


@maintenance_app.command("extend", cls=OnceOnlyCommand)
def extend(
    ref: WindowRef,
    by: Annotated[str, typer.Option("--by", help=f"How much later it ends: {DURATION_FORMS}.")],
    as_json: JsonFlag = False,
) -> None:
    """The work takes longer: end a window later (it stays within 7 days)."""
    with api_errors(), Client() as client:
        window = client.extend_maintenance(ref, by)
    emit(as_json, window, lambda: console.print(f"{window.ref} now ends at {when(window.ends_at)}"))


@maintenance_app.command("end", cls=OnceOnlyCommand)
def end(ref: WindowRef, as_json: JsonFlag = False) -> None:
    """End a window now (or cancel one not yet started); alerts it held that are still open are routed. A
    window over already is left as it is, and the command says so (and succeeds)."""
    with api_errors(), Client() as client:
        window = client.end_maintenance(ref)
    planned = f"planned from {' to '.join(_span(window))}"
    by = f" by {window.ended_by}" if window.ended_by else ""
    if window.unchanged and window.state == "cancelled":
        said = f"{window.ref} had already been cancelled at {when(window.ends_at)}{by} ({planned})"
    elif window.unchanged:
        said = f"{window.ref} had already ended at {when(window.ends_at)}{by}"
    elif window.state == "cancelled":
        said = f"{window.ref} cancelled (it was {planned})"
    else:
        said = f"{window.ref} ended at {when(window.ends_at)}"
    emit(as_json, window, lambda: console.print(escape(said)))
