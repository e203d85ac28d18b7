"""Notification delivery: ``send`` records a Delivery and enqueues its ``notify.deliver`` job in the
caller's transaction (the outbox); the worker performs it (``notify.handlers``)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warroom.context import context_of
from warroom.db import get_or_404, utcnow
from warroom.errors import Conflict, InvalidInput
from warroom.events import DomainEvent, publish
from warroom.incidents.models import Communication, Incident
from warroom.incidents.schemas import ChannelOutcome
from warroom.jobs import service as jobs
from warroom.notify import channels
from warroom.notify.config import (
    EXTERNAL_INCIDENT_FIELDS,
    ChannelConfig,
    channel_names,
    check_recipient,
    find_channel,
    recipient_problem,
)
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.notify.render import Rendered, render
from warroom.notify.schemas import DeliveryPage, DeliveryRead

DELIVER_JOB = "notify.deliver"
PERFORMER = "notifier"  # who the timeline says sent or failed to send a notification
TIMELINE_KIND = "notification"
# Published (``warroom.events``) in the transaction that makes a delivery a dead letter, with
# ``{"delivery_id": …, "error": …}``: paging hands a step on when no one on it can be reached.
DEAD_EVENT = "notification.dead"


def incident_view(incident: Incident) -> dict[str, Any]:
    """What templates see as ``incident``."""
    return {
        "ref": incident.ref,
        "title": incident.title,
        "summary": incident.summary,
        "severity": incident.severity,
        "status": incident.status.value,
        "commander": incident.commander,
        "services": incident.service_names,
        "created_at": incident.created_at.isoformat(),
        "acknowledged_at": incident.acknowledged_at.isoformat() if incident.acknowledged_at else None,
    }


def _view_for(incident: Incident | None, *, external: bool) -> dict[str, Any] | None:
    """``incident`` as a message's template sees it: for an audience outside the org only what it is told
    (``EXTERNAL_INCIDENT_FIELDS``), so an org file's template that shows the severity or title there fails
    (the update is not sent, and says why) instead of telling customers."""
    if incident is None:
        return None
    view = incident_view(incident)
    return {key: view[key] for key in EXTERNAL_INCIDENT_FIELDS} if external else view


def _channel_and_recipient(session: Session, channel: str, to: str) -> tuple[ChannelConfig, str]:
    """The channel's configuration and the recipient (``to``, else the channel's own), or InvalidInput saying
    why no message could ever be delivered that way."""
    app = context_of(session)
    config = find_channel(app.org, channel)
    if config is None:
        allowed = channel_names(app.org)
        raise InvalidInput(
            f"unknown notification channel {channel!r}; allowed: {', '.join(allowed)}",
            {"field": "channel", "allowed": allowed},
        )
    recipient = (to or config.to or "").strip()
    try:
        check_recipient(recipient)
    except ValueError as exc:
        raise InvalidInput(f"recipient {exc}", {"field": "to"}) from None
    if config.type == "email" and recipient and not any(part.strip() for part in recipient.split(",")):
        raise InvalidInput(f"{recipient!r} names no email address", {"field": "to"})
    if config.type == "email" and not recipient:
        raise InvalidInput(f"channel {channel!r} sends email and needs a recipient", {"field": "to"})
    unreachable = recipient_problem(config, recipient)
    if unreachable:
        raise InvalidInput(unreachable, {"field": "to"})
    return config, recipient


def _render(
    session: Session,
    config: ChannelConfig,
    *,
    channel: str,
    recipient: str,
    template: str,
    context: dict[str, Any],
    incident_id: int | None,
) -> Rendered:
    app = context_of(session)
    incident = None
    if incident_id is not None:
        incident = get_or_404(session, Incident, incident_id, f"incident INC-{incident_id}")
    variables = {
        "organization": app.org.organization,
        "base_url": app.settings.base_url,
        "channel": channel,
        "recipient": recipient,
        "incident": _view_for(incident, external=bool(context.get("external"))),
        **context,
    }
    return render(config, template, variables)


def send(
    session: Session,
    *,
    channel: str,
    to: str,
    template: str,
    context: dict[str, Any],
    incident_id: int | None = None,
    idempotency_key: str | None = None,
) -> Delivery:
    """Render ``template`` for ``channel`` now and queue its delivery; both commit with the caller.

    ``channel`` is a channel named in the org file's ``notification_channels`` or a bare channel type
    (``email``, ``slack``, ``webhook``, ``console``) used with its defaults. With an
    ``idempotency_key`` already used, the existing delivery is returned and nothing is queued.
    """
    config, recipient = _channel_and_recipient(session, channel, to)
    if idempotency_key is not None:
        existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == idempotency_key))
        if existing is not None:
            return existing
    rendered = _render(
        session,
        config,
        channel=channel,
        recipient=recipient,
        template=template,
        context=context,
        incident_id=incident_id,
    )
    now = utcnow()
    delivery = Delivery(
        channel=channel,
        channel_type=config.type,
        recipient=recipient,
        template=template,
        subject=rendered.subject,
        body=rendered.text,
        body_html=rendered.html,
        data=json.loads(json.dumps(context, default=str)),
        status=DeliveryStatus.pending,
        attempts=0,
        incident_id=incident_id,
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
    )
    try:
        with session.begin_nested():  # losing a race on the key leaves the caller's transaction usable
            session.add(delivery)
            session.flush()
    except IntegrityError:
        existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == idempotency_key))
        if existing is None:
            raise
        return existing
    _queue(session, delivery, config=config)
    return delivery


def record_not_sent(
    session: Session,
    *,
    channel: ChannelConfig,
    to: str,
    template: str,
    context: dict[str, Any],
    incident_id: int,
    idempotency_key: str,
    error: str,
) -> Delivery:
    """A message ``send`` refused (its template does not render, its recipient cannot be reached), kept as a
    dead letter at once so that it is listed with the others (``notify failures``) and can be retried once
    the org file is fixed: never queued, it is built anew then (``retry_delivery``). Returns the existing
    delivery when ``idempotency_key`` was used already."""
    existing = session.scalar(select(Delivery).where(Delivery.idempotency_key == idempotency_key))
    if existing is not None:
        return existing
    now = utcnow()
    delivery = Delivery(
        channel=channel.name,
        channel_type=channel.type,
        recipient=(to or channel.to or "").strip(),
        template=template,
        subject="",
        body="",
        body_html=None,
        data=json.loads(json.dumps(context, default=str)),
        status=DeliveryStatus.dead,
        attempts=0,
        last_error=error,
        incident_id=incident_id,
        idempotency_key=idempotency_key,
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    session.flush()
    # As for a delivery that became a dead letter after its attempts (``handlers.record_failure``).
    publish(
        session, DomainEvent(DEAD_EVENT, incident_id, PERFORMER, {"delivery_id": delivery.id, "error": error})
    )
    return delivery


def communication_key(communication_id: int, entry: str) -> str:
    """The idempotency key of the delivery of update ``communication_id`` through its audience's ``entry``."""
    return f"communication:{communication_id}:{entry}"


def update_outcomes(session: Session, communication: Communication) -> list[ChannelOutcome]:
    """What became of an update on each of its channels (``notify.subscribers`` delivered it)."""
    keys = {entry: communication_key(communication.id, entry) for entry in communication.channels}
    deliveries = {
        delivery.idempotency_key: delivery
        for delivery in session.scalars(select(Delivery).where(Delivery.idempotency_key.in_(keys.values())))
    }
    outcomes: list[ChannelOutcome] = []
    for entry, key in keys.items():
        delivery = deliveries.get(key)
        if delivery is None:
            outcomes.append(ChannelOutcome(channel=entry, outcome="logged"))
        elif never_built(delivery):
            outcomes.append(
                ChannelOutcome(
                    channel=entry, outcome="not_sent", notification=delivery.id, error=delivery.last_error
                )
            )
        else:
            outcomes.append(ChannelOutcome(channel=entry, outcome="queued", notification=delivery.id))
    return outcomes


def never_built(delivery: Delivery) -> bool:
    """Whether ``delivery`` is one ``record_not_sent`` kept: its message was never made, nor queued."""
    return delivery.job_id is None and delivery.attempts == 0 and delivery.status == DeliveryStatus.dead


def _queue(
    session: Session,
    delivery: Delivery,
    *,
    config: ChannelConfig | None = None,
    run_at: datetime | None = None,
    keyed: bool = True,
) -> None:
    """Enqueue the job that sends ``delivery``, tagged with its peer (see ``channels.peer_of``). ``keyed``:
    one job per delivery; a retry of a dead letter is a job of its own."""
    app = context_of(session)
    config = config or find_channel(app.org, delivery.channel)
    job = jobs.enqueue(
        session,
        kind=DELIVER_JOB,
        payload={"delivery_id": delivery.id},
        run_at=run_at,
        incident_id=delivery.incident_id,
        idempotency_key=f"{DELIVER_JOB}:{delivery.id}" if keyed else None,
        max_attempts=app.settings.notify_max_attempts,
        peer=channels.peer_of(config, delivery.recipient, app.settings) if config is not None else None,
    )
    delivery.job_id = job.id


def shown_address(to: str) -> str:
    """An address as timelines show it (viewers read them): a URL (a webhook or Slack hook, a credential in
    itself) by its host, a phone number by its last digits; an email address or a chat handle as is.
    The full address is in the delivery and page records, for responders."""
    try:
        split = urlsplit(to)
        host = split.hostname
    except ValueError:  # "https://[::1/hook": not a URL that could be sent to, and shown as no address
        return "(an address that is not a valid URL)"
    if split.scheme in ("http", "https") and split.netloc:
        return f"{split.scheme}://{host}/…"
    digits = to.replace(" ", "").replace("-", "")
    if digits.startswith("+") and digits[1:].isdigit():
        return "…" + digits[-2:]
    return to


RESEND_AFTER = timedelta(minutes=1)


def send_again(session: Session, delivery: Delivery, *, recipients: list[str]) -> Delivery:
    """The message of ``delivery`` once more, to ``recipients`` (those a mail server refused for now), as a
    delivery of its own with its own attempts; the same message, not rendered again."""
    now = utcnow()
    again = Delivery(
        channel=delivery.channel,
        channel_type=delivery.channel_type,
        recipient=", ".join(recipients),
        template=delivery.template,
        subject=delivery.subject,
        body=delivery.body,
        body_html=delivery.body_html,
        data=delivery.data,
        status=DeliveryStatus.pending,
        attempts=0,
        incident_id=delivery.incident_id,
        idempotency_key=f"again:{delivery.id}",
        created_at=now,
        updated_at=now,
    )
    session.add(again)
    session.flush()
    _queue(session, again, run_at=now + RESEND_AFTER)
    return again


def withdraw(session: Session, *, delivery_ids: list[int], reason: str) -> int:
    """Take back deliveries not sent yet (queued, or failed and waiting to retry): they will not go out.
    Returns how many. One being sent right now may still arrive."""
    if not delivery_ids:
        return 0
    taken = list(
        session.scalars(
            select(Delivery)
            .where(
                Delivery.id.in_(delivery_ids),
                Delivery.status.in_([DeliveryStatus.pending, DeliveryStatus.failed]),
            )
            .with_for_update()
        )
    )
    for delivery in taken:
        delivery.status = DeliveryStatus.withdrawn
        delivery.last_error = reason
        delivery.updated_at = utcnow()
        jobs.cancel(session, idempotency_key=f"{DELIVER_JOB}:{delivery.id}")
    return len(taken)


def get_delivery(session: Session, delivery_id: int) -> Delivery:
    return get_or_404(session, Delivery, delivery_id, f"notification {delivery_id}")


def list_deliveries(
    session: Session,
    *,
    status: DeliveryStatus | None = None,
    incident_id: int | None = None,
    channel: str | None = None,
    limit: int = 50,
    offset: int = 0,
    before_id: int | None = None,
    whole_addresses: bool = False,
) -> DeliveryPage:
    """Newest first; ``before_id``: those older than that one (keyset paging). URL recipients shortened
    unless ``whole_addresses`` (``delivery_read``)."""
    statement = select(Delivery)
    if before_id is not None:
        statement = statement.where(Delivery.id < before_id)
    if status is not None:
        statement = statement.where(Delivery.status == status)
    if incident_id is not None:
        # An incident that does not exist is named as such, not shown as "no notifications".
        get_or_404(session, Incident, incident_id, f"incident INC-{incident_id}")
        statement = statement.where(Delivery.incident_id == incident_id)
    if channel is not None:
        known = channel_names(context_of(session).org)
        if (
            channel not in known
            and session.scalar(select(Delivery.id).where(Delivery.channel == channel).limit(1)) is None
        ):
            raise InvalidInput(
                f"unknown notification channel {channel!r}; allowed: {', '.join(known)}",
                {"field": "channel", "allowed": known},
            )
        statement = statement.where(Delivery.channel == channel)
    total = session.scalar(select(func.count()).select_from(statement.subquery())) or 0
    rows = session.scalars(statement.order_by(Delivery.id.desc()).limit(limit).offset(offset))
    return DeliveryPage(
        items=[delivery_read(row, whole_addresses=whole_addresses) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


# An acknowledge link's token (oncall.links: "7.<person>.<expiry>.<signature>", URL-safe base64 parts).
_ACK_LINK_TOKEN = re.compile(r"(/api/v1/ack/)[A-Za-z0-9_.=~-]+")
ACK_TOKEN_HIDDEN = "[hidden]"


def hide_ack_links(text: str) -> str:
    """``text`` with each acknowledge link's token replaced: the link acknowledges as the person it was sent
    to, so only they get it (in the delivered message), not whoever reads the notification log."""
    return _ACK_LINK_TOKEN.sub(rf"\g<1>{ACK_TOKEN_HIDDEN}", text)


def shown_recipient(to: str) -> str:
    """A recipient as the notifications API shows it to a responder: a URL (a webhook or a person's own
    contact URL, a credential in itself) shortened as timelines show it (``shown_address``); any other
    address (email, phone, handle) as is."""
    return shown_address(to) if to.lower().startswith(("http://", "https://")) else to


def delivery_read(row: Delivery, *, whole_addresses: bool = False) -> DeliveryRead:
    """A delivery as the notifications API shows it: its message's acknowledge links without their tokens,
    and, unless ``whole_addresses`` (for admins, who can read the org file anyway), a URL recipient shortened
    (``shown_recipient``). The row keeps the full address: retries and ``send_again`` send to it."""
    read = DeliveryRead.from_row(row)
    read.subject = hide_ack_links(read.subject)
    read.body = hide_ack_links(read.body)
    if not whole_addresses:
        shown = shown_recipient(row.recipient)
        if shown != row.recipient:
            read.recipient = shown
            if read.last_error:
                read.last_error = read.last_error.replace(row.recipient, shown)
    return read


def retry_delivery(session: Session, *, delivery_id: int) -> Delivery:
    """Give a dead letter another full round of attempts (after fixing the channel, say)."""
    delivery = get_or_404(session, Delivery, delivery_id, f"notification {delivery_id}", with_for_update=True)
    if delivery.status != DeliveryStatus.dead:
        raise Conflict(
            f"notification {delivery_id} is {delivery.status.value}; only dead ones can be retried",
            {"field": "status", "allowed": [DeliveryStatus.dead.value]},
        )
    if never_built(delivery):
        # Its message could not be made when it was asked for: make it now, from the org file as it is now.
        # Still failing, it is refused (422) and stays a dead letter.
        try:
            config, recipient = _channel_and_recipient(session, delivery.channel, delivery.recipient)
            rendered = _render(
                session,
                config,
                channel=delivery.channel,
                recipient=recipient,
                template=delivery.template,
                context=delivery.data,
                incident_id=delivery.incident_id,
            )
        except InvalidInput as exc:
            raise InvalidInput(
                f"notification {delivery_id} still cannot be sent: {exc.message}", exc.details
            ) from exc
        delivery.recipient = recipient
        delivery.subject, delivery.body, delivery.body_html = rendered.subject, rendered.text, rendered.html
    # No idempotency key: the row lock and the "dead" check above already make a double retry a 409.
    _queue(session, delivery, keyed=False)
    delivery.status = DeliveryStatus.pending
    delivery.updated_at = utcnow()
    return delivery
