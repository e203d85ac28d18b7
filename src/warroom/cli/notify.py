"""Client commands for notification delivery (use WARROOM_URL and WARROOM_TOKEN)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.markup import escape

from warroom.cli.helptext import either
from warroom.cli.output import (
    IdColumn,
    RowIdArgument,
    TextColumn,
    WordColumn,
    api_errors,
    clipped,
    console,
    emit,
    error_console,
    print_json,
    styled,
    table,
)
from warroom.cli.parsing import BeforeIdOption, OnceOnlyCommand, row_number
from warroom.client import Client
from warroom.notify.enums import DeliveryStatus
from warroom.notify.schemas import DeliveryRead

notify_app = typer.Typer(
    help="Notification delivery: dead letters and channel tests (client).", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
# Every status a delivery has, from the enum (withdrawn was left out when it was written by hand).
STATUSES = either(status.value for status in DeliveryStatus)
STATUS_STYLE = {"sent": "green", "pending": "cyan", "failed": "yellow", "dead": "bold red"}


def _table(title: str, rows: list[DeliveryRead]) -> None:
    table(
        title,
        [
            IdColumn("id"),
            IdColumn("incident"),
            WordColumn("channel", drop=2),
            TextColumn("to", drop=3),
            TextColumn("subject", drop=4),
            WordColumn("status"),
            WordColumn("attempts", drop=1),
            "updated",
            "last error",
        ],
        [
            (
                d.id,
                d.incident or "",
                d.channel,
                d.recipient,
                d.subject,
                styled(d.status.value, STATUS_STYLE),
                d.attempts,
                d.updated_at,
                clipped(d.last_error),
            )
            for d in rows
        ],
    )


@notify_app.command("failures", cls=OnceOnlyCommand)
def failures(
    incident: Annotated[str | None, typer.Option(help="Only this incident (INC-n).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Dead letters: notifications that kept failing and were given up."""
    with api_errors(), Client() as client:
        page = client.list_notifications(status="dead", incident=incident, limit=limit)
    if not as_json and not page.items:
        console.print("[green]no dead letters[/]")
        return
    # --json: the API's page as it is (items, total, limit, offset), as every list prints it.
    emit(as_json, page, lambda: _table(f"Dead letters ({page.total})", page.items))


@notify_app.command("list", cls=OnceOnlyCommand)
def list_notifications(
    status: Annotated[DeliveryStatus | None, typer.Option(help=f"{STATUSES}.")] = None,
    incident: Annotated[str | None, typer.Option(help="Only this incident (INC-n).")] = None,
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    before_id: BeforeIdOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Recent notifications, newest first."""
    with api_errors(), Client() as client:
        page = client.list_notifications(
            status=status.value if status else None,
            incident=incident,
            channel=channel,
            limit=limit,
            offset=offset,
            before_id=row_number(before_id, None, "--before-id"),
        )
    emit(as_json, page, lambda: _table(f"Notifications ({page.total})", page.items))


@notify_app.command("test", cls=OnceOnlyCommand)
def test(
    channel: Annotated[str, typer.Option("--channel", help="A channel name from the org file, or a type.")],
    to: Annotated[str, typer.Option("--to", help="Recipient (an address, or a URL).")] = "",
    note: Annotated[str, typer.Option(help="Extra line in the message.")] = "",
    wait: Annotated[
        float, typer.Option(min=0, max=3600, help="Seconds to wait for the outcome (0: do not wait).")
    ] = 15.0,
    as_json: JsonFlag = False,
) -> None:
    """Send a test message through a channel and report whether it went out. Exits 1 when it failed (with
    --json too); a message still queued when the wait is over is not a failure."""
    with api_errors(), Client() as client:
        delivery = client.send_test_notification(channel, to, note)
        deadline = time.monotonic() + wait
        while delivery.status in (DeliveryStatus.pending,) and time.monotonic() < deadline:
            time.sleep(0.25)
            delivery = client.get_notification(delivery.id)
    failed = delivery.status not in (DeliveryStatus.sent, DeliveryStatus.pending)
    if as_json:
        print_json(delivery)
        if failed:
            raise typer.Exit(1)
    elif delivery.status == DeliveryStatus.sent:
        to = f" to {delivery.recipient}" if delivery.recipient else ""
        console.print(f"[green]sent[/] {escape(f'notification {delivery.id} via {delivery.channel}{to}')}")
        if delivery.last_error:  # some recipients refused by the mail server
            error_console.print(f"[yellow]but[/] {escape(delivery.last_error)}")
    elif delivery.status == DeliveryStatus.pending:
        console.print(f"notification {delivery.id} is queued (is a worker running?)")
    else:
        what_next = {
            DeliveryStatus.failed: "retries continue in the background",
            DeliveryStatus.dead: f"not retried: fix the cause, then `warroom notify retry {delivery.id}`",
        }.get(delivery.status, "not sent")
        error_console.print(
            f"[bold red]{delivery.status.value}[/] "
            + escape(
                f"notification {delivery.id} via {delivery.channel}: {delivery.last_error} "
                f"(attempt {delivery.attempts}; {what_next})"
            )
        )
        raise typer.Exit(1)


@notify_app.command("retry", cls=OnceOnlyCommand)
def retry(delivery_id: RowIdArgument, as_json: JsonFlag = False) -> None:
    """Queue a dead letter for another round of attempts."""
    with api_errors(), Client() as client:
        delivery = client.retry_notification(delivery_id)
    emit(as_json, delivery, lambda: console.print(f"notification {delivery.id} queued again"))
