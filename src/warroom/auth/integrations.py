"""Integration keys: how monitoring sources (Alertmanager, Grafana, PagerDuty, plain JSON) authenticate.

A key is 32 hex characters, the length PagerDuty clients expect of a routing key. Only its sha256 is kept.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.auth.service import hash_secret
from warroom.db import DriverStatement, get_or_404, utcnow
from warroom.errors import Forbidden, InvalidInput, Unauthorized


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    type: IntegrationType


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    type: IntegrationType
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class IntegrationCreated(IntegrationRead):
    key: str = Field(description="The secret key; shown once.")


class IntegrationIdentity(BaseModel):
    """The caller of an intake endpoint."""

    id: int
    name: str
    type: IntegrationType


def create_integration(session: Session, *, name: str, type: IntegrationType) -> IntegrationCreated:
    name = name.strip()
    if not name:
        raise InvalidInput("name must not be blank", {"field": "name"})
    secret = secrets.token_hex(16)
    row = IntegrationKey(name=name, type=type, key_hash=hash_secret(secret), prefix=secret[:8])
    session.add(row)
    session.flush()
    return IntegrationCreated(**IntegrationRead.model_validate(row).model_dump(), key=secret)


def list_integrations(session: Session) -> list[IntegrationRead]:
    rows = session.scalars(select(IntegrationKey).order_by(IntegrationKey.id))
    return [IntegrationRead.model_validate(row) for row in rows]


def revoke_integration(session: Session, *, integration_id: int) -> IntegrationRead:
    row = get_or_404(session, IntegrationKey, integration_id, f"integration with id {integration_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return IntegrationRead.model_validate(row)


_LOOKUP = select(
    IntegrationKey.id, IntegrationKey.name, IntegrationKey.type, IntegrationKey.revoked_at
).where(IntegrationKey.key_hash == bindparam("key_hash"))
_LOOKUPS: dict[str, DriverStatement] = {}


def authenticate_integration(
    session: Session, secret: str | None, expected: IntegrationType
) -> IntegrationIdentity:
    return identify_integration(session.connection(), secret, expected)


def identify_integration(
    connection: Connection, secret: str | None, expected: IntegrationType
) -> IntegrationIdentity:
    """401 for a missing, unknown or revoked key; 403 for a key made for another kind of source.

    Driver SQL, compiled once: this runs for every batch of alert deliveries.
    """
    if not secret:
        raise Unauthorized("an integration key is required: send ?key=<key> or 'Authorization: Bearer <key>'")
    dialect = connection.dialect
    lookup = _LOOKUPS.get(dialect.name)
    if lookup is None:
        lookup = _LOOKUPS[dialect.name] = DriverStatement.compile(_LOOKUP, dialect)
    rows = lookup.execute(connection, {"key_hash": hash_secret(secret)})
    if not rows:
        raise Unauthorized("the integration key is not valid")
    integration_id, name, kind, revoked_at = rows[0]
    if revoked_at is not None:
        raise Unauthorized("the integration key was revoked")
    if kind != expected.value:
        raise Forbidden(
            f"this key is for {kind} payloads; this endpoint takes {expected.value}",
            {"field": "key", "allowed": [expected.value]},
        )
    return IntegrationIdentity(id=integration_id, name=name, type=expected)
