"""`warroom oncall …`: who is on call, upcoming shifts, overrides, policies, pages (client commands)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.text import Text

from warroom.cli.output import (
    IdColumn,
    TextColumn,
    WordColumn,
    api_errors,
    console,
    emit,
    instant,
    table,
    when,
)
from warroom.cli.parsing import OnceOnlyCommand
from warroom.client import Client
from warroom.fields import MAX_ROW_ID
from warroom.oncall.schemas import PageRead

oncall_app = typer.Typer(
    help="On-call schedules, overrides and escalation (client; uses WARROOM_URL and WARROOM_TOKEN).",
    no_args_is_help=True,
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _who(name: str | None, display: str | None) -> str | Text:
    if name is None:
        return Text("nobody", style="red")
    return f"{display} ({name})" if display and display != name else name


@oncall_app.command("who", cls=OnceOnlyCommand)
def who(
    schedule: Annotated[str | None, typer.Option("--schedule", "-s", help="Only this schedule.")] = None,
    at: Annotated[str | None, typer.Option("--at", help="ISO 8601; no offset = local time.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Who is on call, for every schedule (or one), now or at a time."""
    with api_errors(), Client() as client:
        rows = client.who_is_on_call(schedule=schedule, at=instant(at, "--at"))
    emit(
        as_json,
        rows,
        lambda: table(
            f"On call at {when(rows[0].at) if rows else 'now'}",
            [WordColumn("schedule"), "on call", "since", "until", WordColumn("from", drop=1)],
            [
                (
                    r.schedule,
                    _who(r.person, r.display_name),
                    r.shift.start,
                    r.shift.end,
                    r.shift.source,
                )
                for r in rows
            ],
            # Asked about another moment: "since 15:57" would read as that day's, not today's.
            dated=at is not None,
        ),
    )


@oncall_app.command("shifts", cls=OnceOnlyCommand)
def shifts(
    schedule: Annotated[str, typer.Argument(help="Schedule name.")],
    count: Annotated[int, typer.Option("--count", "-n", help="How many shifts.")] = 10,
    after: Annotated[str | None, typer.Option("--after", help="Start from this time; default now.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The current and next shifts of a schedule (overrides and layers applied)."""
    with api_errors(), Client() as client:
        rows = client.shifts(schedule, count=count, after=instant(after, "--after"))
    emit(
        as_json,
        rows,
        lambda: table(
            f"Shifts of {schedule}",
            ["start", "end", WordColumn("hours", drop=1), "on call", WordColumn("from", drop=2)],
            [
                (
                    s.start,
                    s.end,
                    f"{(s.end - s.start).total_seconds() / 3600:g}",
                    _who(s.person, s.display_name),
                    s.source,
                )
                for s in rows
            ],
            dated=after is not None,  # as `who --at`
        ),
    )


@oncall_app.command("override", cls=OnceOnlyCommand)
def override(
    schedule: Annotated[str, typer.Argument(help="Schedule name.")],
    person: Annotated[str, typer.Option("--person", "-p", help="Who takes the schedule.")],
    start: Annotated[str, typer.Option("--start", help="ISO 8601 start.")],
    end: Annotated[str, typer.Option("--end", help="ISO 8601 end.")],
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Put someone on call for a time range (wins over the rotation)."""
    start_at, end_at = instant(start, "--start"), instant(end, "--end")
    assert start_at is not None and end_at is not None
    # The server checks the range as a whole ("body"): the options that set it are named instead.
    with (
        api_errors({"body": "--end", "start": "--start", "end": "--end", "person": "--person"}),
        Client() as client,
    ):
        created = client.create_override(schedule, person=person, start=start_at, end=end_at, reason=reason)
    emit(
        as_json,
        created,
        lambda: console.print(
            escape(
                f"override {created.id}: {created.person} on {created.schedule} "
                f"from {when(created.starts_at)} to {when(created.ends_at)}"
            )
        ),
    )


@oncall_app.command("overrides", cls=OnceOnlyCommand)
def overrides(
    schedule: Annotated[str, typer.Argument(help="Schedule name.")],
    include_past: Annotated[bool, typer.Option("--all", help="Include overrides that ended.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """List a schedule's runtime overrides."""
    with api_errors(), Client() as client:
        rows = client.overrides(schedule, include_past=include_past)
    emit(
        as_json,
        rows,
        lambda: table(
            f"Overrides of {schedule}",
            [IdColumn("id"), WordColumn("person"), "start", "end", WordColumn("by", drop=1), "reason"],
            [(o.id, o.person, o.starts_at, o.ends_at, o.created_by, o.reason) for o in rows],
        ),
    )


@oncall_app.command("remove-override", cls=OnceOnlyCommand)
def remove_override(
    schedule: Annotated[str, typer.Argument(help="Schedule name.")],
    override_id: Annotated[int, typer.Argument(min=1, max=MAX_ROW_ID, help="Override id.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete a runtime override."""
    with api_errors(), Client() as client:
        removed = client.delete_override(schedule, override_id)
    emit(as_json, removed, lambda: console.print(escape(f"removed override {removed.id} ({removed.person})")))


@oncall_app.command("policies", cls=OnceOnlyCommand)
def policies(as_json: JsonFlag = False) -> None:
    """Escalation policies and their steps."""
    with api_errors(), Client() as client:
        rows = client.escalation_policies()
    emit(
        as_json,
        rows,
        lambda: table(
            "Escalation policies",
            ["policy", "repeat", TextColumn("steps", lines=True)],  # a step a line
            [
                (
                    p.name + (" (generated)" if p.generated else ""),
                    p.repeat,
                    "\n".join(
                        f"{i}. {', '.join(s.targets)} — {s.delay_seconds // 60}m"
                        for i, s in enumerate(p.steps, start=1)
                    ),
                )
                for p in rows
            ],
        ),
    )


@oncall_app.command("page", cls=OnceOnlyCommand)
def page(
    ref: Annotated[str, typer.Argument(help="Incident, e.g. INC-7.")],
    policy: Annotated[
        str | None,
        typer.Option("--policy", help="Escalation policy to page (default: the incident's own)."),
    ] = None,
    person: Annotated[
        str | None,
        typer.Option("--person", "-p", help="Page this person by their notification rules, not a policy."),
    ] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why, in one line; the page shows it.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Page an escalation policy for an incident now: another team's experts, or the incident's own policy
    again after it was acknowledged or ran out of steps; or one person (--person)."""
    if policy is not None and person is not None:
        raise typer.BadParameter("give --policy or --person, not both", param_hint="--person")
    with api_errors(), Client() as client:
        requested = client.request_page(ref, policy=policy, note=note, person=person)
    paged = requested.person if requested.person is not None else requested.policy
    emit(
        as_json,
        requested,
        lambda: console.print(
            escape(
                f"page of {paged} requested for {requested.incident}; "
                f"follow it with: warroom oncall pages {requested.incident}"
            )
        ),
    )


def _page_pass(page: PageRead) -> int | str:
    """A page's pass as the escalation row and the timeline number it (not its raw cycle)."""
    if page.pass_number is not None:
        return page.pass_number
    return "—" if page.escalation_id is None else "earlier run"


@oncall_app.command("pages", cls=OnceOnlyCommand)
def pages(
    ref: Annotated[str, typer.Argument(help="Incident, e.g. INC-7.")], as_json: JsonFlag = False
) -> None:
    """Who an incident paged, when, and where each escalation stands."""
    with api_errors(), Client() as client:
        result = client.incident_pages(ref)

    def render() -> None:
        table(
            f"Escalations of {result.incident}",
            [
                WordColumn("policy"),
                # Which runs a severity raise supersedes: only the incident's own, not a rule's or a person's.
                WordColumn("origin", drop=4),
                WordColumn("mode", drop=2),
                WordColumn("state"),
                WordColumn("pass", drop=1),
                WordColumn("step"),
                "next check",
                TextColumn("asked for by", drop=3),
            ],
            [
                (
                    e.policy,
                    f"merge {e.merged_from}" if e.merged_from else e.origin or "incident",
                    e.mode,
                    e.state,
                    e.pass_number,
                    e.step,
                    e.next_check_at,
                    f"{e.requested_by}: {e.request_note}" if e.request_note else e.requested_by or "",
                )
                for e in result.escalations
            ],
        )
        table(
            "Pages",
            [
                "when",
                # A requested policy pages beside the incident's own: which run a page is of. Left out
                # after the step, pass, channel and address (the policy is in the table above).
                WordColumn("policy", drop=5),
                WordColumn("person"),
                WordColumn("channel", drop=3),
                TextColumn("to", drop=4),
                WordColumn("step", drop=2),
                WordColumn("pass", drop=1),
                WordColumn("page"),
                WordColumn("delivery"),
                "error",
            ],
            [
                (
                    p.send_at,
                    p.policy,
                    p.person,
                    p.channel,
                    p.to,
                    p.step,
                    _page_pass(p),
                    p.status,
                    p.delivery_status or "—",
                    p.error or "",
                )
                for p in result.pages
            ],
        )

    emit(as_json, result, render)
