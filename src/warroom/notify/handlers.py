"""The ``notify.deliver`` job: perform one delivery; record success or failure on the incident."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from warroom.context import AppContext
from warroom.db import utcnow
from warroom.events import DomainEvent, publish
from warroom.incidents import service as incidents
from warroom.incidents.models import Incident
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler
from warroom.jobs.worker import record_after_io
from warroom.notify import channels
from warroom.notify.config import find_channel
from warroom.notify.models import Delivery, DeliveryStatus
from warroom.notify.service import (
    DEAD_EVENT,
    DELIVER_JOB,
    PERFORMER,
    TIMELINE_KIND,
    send_again,
    shown_address,
)


def _describe(delivery: Delivery) -> str:
    to = f" to {shown_address(delivery.recipient)}" if delivery.recipient else ""
    return f"{delivery.template} notification via {delivery.channel}{to}"


def _on_timeline(session: Session, delivery: Delivery, action: str, **data: Any) -> None:
    if delivery.incident_id is None:
        return
    incident = incidents.get_incident(session, delivery.incident_id, for_update=True)
    incidents.append_timeline(
        session,
        incident,
        performer=PERFORMER,
        kind=TIMELINE_KIND,
        action=action,
        data={
            "delivery_id": delivery.id,
            "channel": delivery.channel,
            # Viewers read timelines: the address as the action shows it (a hook URL is a credential); the
            # full one is on the delivery, for responders.
            "recipient": shown_address(delivery.recipient) if delivery.recipient else delivery.recipient,
            "subject": delivery.subject,
            "attempts": delivery.attempts,
            **data,
        },
    )


def _locked(session: Session, delivery_id: Any) -> Delivery | None:
    """The delivery, locked, its incident locked first. Every transaction that locks both takes the incident
    first: an acknowledgement or a resolve locks it, then withdraws its deliveries not sent yet
    (``paging.stop_escalations``). Taking the delivery first here deadlocked with those on PostgreSQL."""
    incident_id = session.scalar(select(Delivery.incident_id).where(Delivery.id == delivery_id))
    if incident_id is not None:
        session.execute(select(Incident.id).where(Incident.id == incident_id).with_for_update())
    # As it is now that it is locked (withdrawn meanwhile, say), not as the session may have read it before.
    return session.get(Delivery, delivery_id, with_for_update=True, populate_existing=True)


def record_failure(context: AppContext, session: Session, job: Job, error: str, final: bool) -> None:
    delivery = _locked(session, job.payload.get("delivery_id"))
    if delivery is None:
        return
    if delivery.status == DeliveryStatus.withdrawn:
        # Taken back while this attempt was out (someone acknowledged): it stays withdrawn, and the retry,
        # finding it so, sends nothing.
        delivery.attempts = job.attempts
        return
    delivery.attempts = job.attempts
    delivery.last_error = error
    delivery.status = DeliveryStatus.dead if final else DeliveryStatus.failed
    delivery.updated_at = utcnow()
    # The first failure and the dead letter go on the timeline; attempts in between stay on the row.
    if final:
        _on_timeline(
            session,
            delivery,
            f"Could not deliver {_describe(delivery)} after {job.attempts} attempt(s): {error}",
            status="dead",
            error=error,
        )
        if delivery.incident_id is not None:
            # Whoever sent it learns it will not arrive (a page: paging hands its step on if no one on it
            # can be reached), in this same transaction.
            session.flush()
            publish(
                session,
                DomainEvent(
                    DEAD_EVENT, delivery.incident_id, PERFORMER, {"delivery_id": delivery.id, "error": error}
                ),
            )
    elif job.attempts == 1:
        _on_timeline(
            session,
            delivery,
            f"Delivery of {_describe(delivery)} failed ({error}); retrying",
            status="failed",
            error=error,
            next_attempt_at=job.run_at.isoformat(),
        )


@job_handler(DELIVER_JOB, on_failure=record_failure, deferred_transaction=True)
def deliver(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    delivery_id = job.payload.get("delivery_id")
    # Read first, send, then write: the write transaction (the lock, on SQLite) is not held while we
    # wait on an SMTP server or a webhook.
    with context.db.read() as reader:
        found = reader.get(Delivery, delivery_id)
        if found is None:
            return {"skipped": "the delivery no longer exists"}
        if found.status == DeliveryStatus.sent:
            return {"skipped": "already sent", "delivery_id": found.id}
        if found.status == DeliveryStatus.withdrawn:
            return {"skipped": f"withdrawn: {found.last_error}", "delivery_id": found.id}
        channel_name = found.channel
        message = channels.outgoing(
            delivery_id=found.id,
            channel=found.channel,
            recipient=found.recipient,
            template=found.template,
            subject=found.subject,
            text=found.body,
            html=found.body_html,
            incident_id=found.incident_id,
            data=found.data,
        )
    channel = find_channel(context.org, channel_name)
    if channel is None:
        raise channels.DeliveryError(f"channel {channel_name!r} is not configured any more")
    info = channels.deliver(channel, message, context.settings)
    # Sent: should the database not take this now (a restart), the worker writes it again once it is back
    # rather than send it again.
    return record_after_io(session, lambda writer: _record_sent(writer, job, delivery_id, info))


def _record_sent(session: Session, job: Job, delivery_id: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Write down that the delivery went out (``info``: what the channel said)."""
    delivery = _locked(session, delivery_id)
    if delivery is None:
        return {"skipped": "the delivery was removed while it was sent", **info}
    delivery.attempts = job.attempts
    delivery.status = DeliveryStatus.sent
    delivery.sent_at = utcnow()
    delivery.updated_at = delivery.sent_at
    retried = f" (attempt {job.attempts})" if job.attempts > 1 else ""
    refused = info.get("refused")
    if refused:
        delivery.last_error = f"refused by the mail server: {refused}"
        if info.get("refused_for_now"):
            again = send_again(session, delivery, recipients=info["refused_for_now"])
            refused += f"; sent again to those refused for now as notification {again.id}"
        _on_timeline(
            session,
            delivery,
            f"Sent {_describe(delivery)}{retried}: {delivery.subject}; the mail server refused {refused}",
            status="sent",
            refused=refused,
        )
    else:
        _on_timeline(
            session, delivery, f"Sent {_describe(delivery)}{retried}: {delivery.subject}", status="sent"
        )
    return {"delivery_id": delivery.id, **info}
