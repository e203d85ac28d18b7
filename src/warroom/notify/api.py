from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from warroom.auth.enums import Role
from warroom.deps import Admin, BeforeId, Context, Offset, Responder, RowId
from warroom.incidents.service import parse_ref
from warroom.notify import service
from warroom.notify.models import DeliveryStatus
from warroom.notify.schemas import DeliveryPage, DeliveryRead, TestNotification

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])
# Reading needs the responder role: message bodies name people and their addresses. Their acknowledge links
# are shown without the token (service.delivery_read): a link acknowledges as the person it was sent to.
# A URL recipient (a webhook, a person's own contact URL: credentials) is shortened for all but admins, who
# can read the org file anyway.


@router.get("", response_model=DeliveryPage)
def list_notifications(
    context: Context,
    principal: Responder,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    incident: Annotated[str | None, Query(description="INC-n", max_length=20)] = None,
    channel: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Offset = 0,
    before_id: BeforeId = None,
) -> DeliveryPage:
    """Notifications, newest first."""
    incident_id = parse_ref(incident) if incident else None
    with context.db.read() as session:
        return service.list_deliveries(
            session,
            status=status_,
            incident_id=incident_id,
            channel=channel,
            limit=limit,
            offset=offset,
            before_id=before_id,
            whole_addresses=principal.role.allows(Role.admin),
        )


@router.get("/{delivery_id}", response_model=DeliveryRead)
def get_notification(delivery_id: RowId, context: Context, principal: Responder) -> DeliveryRead:
    with context.db.read() as session:
        return service.delivery_read(
            service.get_delivery(session, delivery_id), whole_addresses=principal.role.allows(Role.admin)
        )


@router.post("/test", response_model=DeliveryRead, status_code=status.HTTP_202_ACCEPTED)
def send_test(body: TestNotification, context: Context, principal: Admin) -> DeliveryRead:
    """Queue a test message through a channel; poll the notification to see it sent or failing."""
    with context.db.write() as session:
        delivery = service.send(
            session,
            channel=body.channel,
            to=body.to,
            template="test",
            context={"note": body.note, "requested_by": principal.name},
        )
        return service.delivery_read(delivery, whole_addresses=True)


@router.post("/{delivery_id}/retry", response_model=DeliveryRead, status_code=status.HTTP_202_ACCEPTED)
def retry(delivery_id: RowId, context: Context, _: Admin) -> DeliveryRead:
    """Give a dead letter another round of attempts."""
    with context.db.write() as session:
        return service.delivery_read(
            service.retry_delivery(session, delivery_id=delivery_id), whole_addresses=True
        )
