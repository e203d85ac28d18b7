"""Integration keys: how monitoring sources (Alertmanager, Grafana, PagerDuty, plain JSON) authenticate.

A key is 32 hex characters, the length PagerDuty clients expect of a routing key. Only its sha256 is kept.
A Grafana integration may also have a signing secret (``auth.signing``), kept as given.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.auth.service import hash_secret
from warroom.auth.signing import (
    SECRET_MAX_LENGTH,
    SECRET_MIN_LENGTH,
    check_signing_secret,
    new_signing_secret,
)
from warroom.db import DriverStatement, get_or_404, utcnow
from warroom.errors import Forbidden, InvalidInput, Unauthorized


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    type: IntegrationType
    signing: bool = Field(
        False,
        description="Grafana only: generate an HMAC signing secret; deliveries must then be signed with it.",
    )
    signing_secret: str | None = Field(
        None,
        min_length=SECRET_MIN_LENGTH,
        max_length=SECRET_MAX_LENGTH,
        description="Grafana only: use this signing secret instead of generating one (implies signing).",
    )


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    type: IntegrationType
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    signing: bool = Field(description="Deliveries must carry a valid HMAC signature.")


class IntegrationCreated(IntegrationRead):
    key: str = Field(description="The secret key; shown once.")
    signing_secret: str | None = Field(
        None, description="The HMAC signing secret to give Grafana; shown once (null without signing)."
    )


class IntegrationIdentity(BaseModel):
    """The caller of an intake endpoint (and, for a signing integration, the secret to check HMACs with)."""

    id: int
    name: str
    type: IntegrationType
    signing_secret: str | None = Field(None, repr=False, exclude=True)


def create_integration(
    session: Session,
    *,
    name: str,
    type: IntegrationType,
    signing: bool = False,
    signing_secret: str | None = None,
) -> IntegrationCreated:
    """A new key; with ``signing`` (a generated secret) or a given ``signing_secret``, Grafana only."""
    name = name.strip()
    if not name:
        raise InvalidInput("name must not be blank", {"field": "name"})
    if signing or signing_secret is not None:
        field = "signing_secret" if signing_secret is not None else "signing"
        if type != IntegrationType.grafana:
            raise InvalidInput(
                f"{field}: only grafana integrations can sign their deliveries (type is {type.value})",
                {"field": field, "allowed": [IntegrationType.grafana.value]},
            )
        signing_secret = (
            check_signing_secret(signing_secret) if signing_secret is not None else new_signing_secret()
        )
    secret = secrets.token_hex(16)
    row = IntegrationKey(
        name=name, type=type, key_hash=hash_secret(secret), prefix=secret[:8], signing_secret=signing_secret
    )
    session.add(row)
    session.flush()
    return IntegrationCreated(
        **IntegrationRead.model_validate(row).model_dump(), key=secret, signing_secret=signing_secret
    )


def list_integrations(session: Session) -> list[IntegrationRead]:
    rows = session.scalars(select(IntegrationKey).order_by(IntegrationKey.id))
    return [IntegrationRead.model_validate(row) for row in rows]


def revoke_integration(session: Session, *, integration_id: int) -> IntegrationRead:
    row = get_or_404(session, IntegrationKey, integration_id, f"integration with id {integration_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return IntegrationRead.model_validate(row)


_LOOKUP = select(
    IntegrationKey.id,
    IntegrationKey.name,
    IntegrationKey.type,
    IntegrationKey.revoked_at,
    IntegrationKey.signing_secret,
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

    The identity carries the integration's signing secret, if it has one: the caller checks each delivery's
    signature with it (``auth.signing.verify``).

    Driver SQL, compiled once: this runs for every batch of alert deliveries.
    """
    if not secret:
        raise Unauthorized("an integration key is required: send ?key=<key> or 'Authorization: Bearer <key>'")
    dialect = connection.dialect
    lookup = _LOOKUPS.get(dialect.name)
    if lookup is None:
        lookup = _LOOKUPS[dialect.name] = DriverStatement.compile(_LOOKUP, dialect)
    rows = lookup.query(connection, {"key_hash": hash_secret(secret)})
    if not rows:
        raise Unauthorized("the integration key is not valid")
    integration_id, name, kind, revoked_at, signing_secret = rows[0]
    if revoked_at is not None:
        raise Unauthorized("the integration key was revoked")
    if kind != expected.value:
        raise Forbidden(
            f"this key is for {kind} payloads; this endpoint takes {expected.value}",
            {"field": "key", "allowed": [expected.value]},
        )
    return IntegrationIdentity(id=integration_id, name=name, type=expected, signing_secret=signing_secret)
