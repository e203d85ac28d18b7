"""Integration keys: how monitoring sources (Alertmanager, Grafana, PagerDuty, plain JSON) authenticate.

A key is 32 hex characters, the length PagerDuty clients expect of a routing key. Only its sha256 is kept.
A Grafana integration may also have a signing secret (``auth.signing``), kept as given.

Rotating an integration gives it a new key (and a new signing secret if it signs) and keeps everything else,
above all its dedup scope: alerts open under the old key still update and resolve under the new one. The
replaced key and secret keep working for a grace period, so no delivery is refused while the source's
configuration is being changed; ``--grace 0`` ends them at once (a leaked key).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.orm import Session

from warroom.auth.models import IntegrationKey, IntegrationType
from warroom.auth.service import check_name, hash_secret
from warroom.auth.signing import (
    SECRET_MAX_LENGTH,
    SECRET_MIN_LENGTH,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    SignedBody,
    check_header_name,
    check_signing_secret,
    new_signing_secret,
    verify,
)
from warroom.db import DriverStatement, UTCDateTime, get_or_404, utcnow
from warroom.durations import RequestDuration, format_duration
from warroom.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from warroom.jobs import service as jobs
from warroom.jobs.models import Job
from warroom.jobs.service import job_handler

if TYPE_CHECKING:
    from warroom.context import AppContext
    from warroom.orgconfig import OrgConfig

MAX_ROTATION_GRACE = timedelta(days=7)
DEFAULT_ROTATION_GRACE = timedelta(hours=1)
# The job that erases a replaced key once its grace period is over.
FORGET_REPLACED_KEY = "integration.forget_replaced_key"


SigningSecret = Annotated[str, StringConstraints(min_length=SECRET_MIN_LENGTH, max_length=SECRET_MAX_LENGTH)]


class IntegrationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    type: IntegrationType
    service: str | None = Field(
        None,
        max_length=200,
        description="A service of the org file: the service of this integration's alerts and changes that "
        "name none (and of Alertmanager alerts that only have a job label).",
    )
    signing: bool = Field(
        False,
        description="grafana and webhook only: generate an HMAC signing secret; deliveries must then be "
        "signed with it.",
    )
    signing_secret: SigningSecret | None = Field(
        None,
        description="grafana and webhook only: use this signing secret instead of generating one (implies "
        "signing).",
    )
    signature_header: str | None = Field(
        None,
        description=f"Signing integrations: the contact point's signature header, if not {SIGNATURE_HEADER}.",
    )
    timestamp_header: str | None = Field(
        None,
        description=f"Signing integrations: the contact point's timestamp header, if not {TIMESTAMP_HEADER}.",
    )


class IntegrationRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    grace: RequestDuration = Field(
        DEFAULT_ROTATION_GRACE,
        description="How long the replaced key (and signing secret) keep working, e.g. '1h', '30m', '0s' "
        "to end them at once; at most 7 days.",
    )
    signing_secret: SigningSecret | None = Field(
        None, description="Signing integrations only: the new signing secret, instead of a generated one."
    )


class IntegrationUpdate(BaseModel):
    """What can change in place. A header name given as null goes back to Grafana's default name; a service
    given as null removes the default service."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, min_length=1, max_length=200)
    service: str | None = Field(
        None, max_length=200, description="A service of the org file (see create); null: no default service."
    )
    signature_header: str | None = Field(
        None, description=f"Signing integrations: the signature header's name; null for {SIGNATURE_HEADER}."
    )
    timestamp_header: str | None = Field(
        None, description=f"Signing integrations: the timestamp header's name; null for {TIMESTAMP_HEADER}."
    )
    grace: RequestDuration = Field(
        DEFAULT_ROTATION_GRACE,
        description="When header names change: how long deliveries signed under the old names are still "
        "accepted (until the contact point is changed too), e.g. '1h', '0s' to stop at once; at most 7 days.",
    )


class IntegrationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    type: IntegrationType
    prefix: str
    service: str | None = Field(None, description="The service of its alerts and changes that name none.")
    service_known: bool | None = Field(
        None,
        description="Whether the org file has that service. False: the file dropped it after the integration "
        "was given it, so no rule, window or incident knows its alerts' service. Null: no default service, "
        "or not checked.",
    )
    created_at: datetime
    revoked_at: datetime | None
    signing: bool = Field(description="Deliveries must carry a valid HMAC signature.")
    signature_header: str | None = Field(None, description=f"Null: {SIGNATURE_HEADER}.")
    timestamp_header: str | None = Field(None, description=f"Null: {TIMESTAMP_HEADER}.")
    rotated_at: datetime | None = Field(None, description="When the key was last replaced.")
    last_used_at: datetime | None = Field(
        None, description="When the key last authenticated a delivery (to the minute); null: never."
    )
    previous_key_last_used_at: datetime | None = Field(
        None,
        description="When the key replaced by the last rotation was last used after it (null: not since).",
    )
    previous_valid_until: datetime | None = Field(
        None, description="Until when the replaced key (and signing secret) still work; null once none does."
    )
    previous_signature_header: str | None = Field(
        None, description="The signature header's name before the last change (null: the default)."
    )
    previous_timestamp_header: str | None = Field(
        None, description="The timestamp header's name before the last change (null: the default)."
    )
    previous_headers_valid_until: datetime | None = Field(
        None, description="Until when the previous header names are still read; null once they are not."
    )


class IntegrationRevoked(IntegrationRead):
    unchanged: bool = Field(
        default=False,
        description="True when the integration was revoked already: this request changed nothing "
        "(revoked_at is when it was).",
    )


class IntegrationCreated(IntegrationRead):
    key: str = Field(description="The secret key; shown once.")
    signing_secret: str | None = Field(
        None, description="The HMAC signing secret to give Grafana; shown once (null without signing)."
    )


class IntegrationIdentity(BaseModel):
    """The caller of an intake endpoint (and, for a signing integration, the secrets to check HMACs with:
    the current one, then the replaced one while a rotation's grace period lasts)."""

    id: int
    name: str
    type: IntegrationType
    # The service of its deliveries' alerts that name none (``adapters.apply_default_service``).
    service: str | None = None
    signing_secrets: tuple[str, ...] = Field((), repr=False, exclude=True)
    signature_header: str | None = None
    timestamp_header: str | None = None
    # (signature, timestamp) header names before the last change, while they are still read.
    previous_headers: tuple[str | None, str | None] | None = None
    # The key it came with is the one a rotation replaced (in its grace period), not the current one.
    by_previous_key: bool = Field(False, exclude=True)
    # This use of the key is still to be written (``record_use``): not written within the last minute.
    use_unrecorded: bool = Field(False, exclude=True)

    def check_signature(self, signed: SignedBody | None, now: datetime) -> None:
        """Unauthorized unless a signing integration's delivery is signed (nothing to check otherwise).

        While the previous header names are still read, a delivery with no signature under the current name
        is read under the previous names: its contact point has not been changed yet. A signature under the
        current name is never checked under the old ones."""
        if not self.signing_secrets:
            return
        signature_header, timestamp_header = self.signature_header, self.timestamp_header
        if signed is not None:
            current = signed.under(signature_header, timestamp_header)
            if current.signature is None and self.previous_headers is not None:
                signature_header, timestamp_header = self.previous_headers
                current = signed.under(signature_header, timestamp_header)
            signed = current
        verify(
            self.signing_secrets,
            signed,
            now,
            signature_header=signature_header or SIGNATURE_HEADER,
            timestamp_header=timestamp_header or TIMESTAMP_HEADER,
            sender=(
                "Grafana's webhook contact point"
                if self.type is IntegrationType.grafana
                else "the sending tool's webhook settings"
            ),
            # Grafana's own header, or one named for this tool; a Sentry user is not sent to Grafana's.
            timestamp_expected=self.type is IntegrationType.grafana or timestamp_header is not None,
        )


# The integrations whose senders can sign a delivery's body with a shared secret (hex HMAC-SHA256 in a
# header): Grafana's contact point, and tools posting their own webhook that sign the same way (Sentry).
SIGNING_TYPES = (IntegrationType.grafana, IntegrationType.webhook)


def create_integration(
    session: Session,
    *,
    org: OrgConfig,
    name: str,
    type: IntegrationType,
    service: str | None = None,
    signing: bool = False,
    signing_secret: str | None = None,
    signature_header: str | None = None,
    timestamp_header: str | None = None,
) -> IntegrationCreated:
    """A new key; with ``signing`` (a generated secret) or a given ``signing_secret`` (``SIGNING_TYPES``), and
    optionally the header names the contact point sends the signature and timestamp in. ``service`` must be
    one of the org file's."""
    name = check_name(name)
    if service is not None:
        org.check_services([service], "service")
    if signing or signing_secret is not None:
        field = "signing_secret" if signing_secret is not None else "signing"
        if type not in SIGNING_TYPES:
            raise InvalidInput(
                f"{field}: only grafana and webhook integrations can sign their deliveries (type is "
                f"{type.value})",
                {"field": field, "allowed": [kind.value for kind in SIGNING_TYPES]},
            )
        signing_secret = (
            check_signing_secret(signing_secret) if signing_secret is not None else new_signing_secret()
        )
    _check_header_names(signing_secret is not None, signature_header, timestamp_header)
    check_name_free(session, name)
    secret = secrets.token_hex(16)
    row = IntegrationKey(
        name=name,
        type=type,
        key_hash=hash_secret(secret),
        prefix=secret[:8],
        service=service,
        signing_secret=signing_secret,
        signature_header=signature_header,
        timestamp_header=timestamp_header,
    )
    session.add(row)
    session.flush()
    return IntegrationCreated(
        **_read(row, utcnow(), org).model_dump(), key=secret, signing_secret=signing_secret
    )


def _check_header_names(signs: bool, signature_header: str | None, timestamp_header: str | None) -> None:
    """The header names an integration reads its signature and timestamp from (None: the default name)."""
    for field, header in (("signature_header", signature_header), ("timestamp_header", timestamp_header)):
        if header is not None:
            if not signs:
                raise InvalidInput(
                    f"{field}: only an integration that signs its deliveries reads signature headers",
                    {"field": field},
                )
            check_header_name(header, field)
    effective = (
        (signature_header or SIGNATURE_HEADER).lower(),
        (timestamp_header or TIMESTAMP_HEADER).lower(),
    )
    if effective[0] == effective[1]:
        raise InvalidInput(
            "timestamp_header must differ from signature_header", {"field": "timestamp_header"}
        )


# Names are unique among live integrations, checked here rather than by a unique index: a database may already
# hold duplicates (from before the check), which an index would fail to build on.
NAME_LOCK = 7270002  # PostgreSQL advisory lock: two admins creating the same name at once get one each


def check_name_free(session: Session, name: str, *, integration_id: int | None = None) -> None:
    """Conflict if a live integration other than ``integration_id`` is called ``name``. Rules, maintenance
    windows and the alert list name integrations by name: two live ones of one name would both match. A
    revoked integration's name may be taken again (it sends nothing any more); its past alerts then list
    under that name with the new one's."""
    if session.connection().dialect.name == "postgresql":
        session.execute(text(f"SELECT pg_advisory_xact_lock({NAME_LOCK})"))
    statement = select(IntegrationKey).where(IntegrationKey.name == name, IntegrationKey.revoked_at.is_(None))
    if integration_id is not None:
        statement = statement.where(IntegrationKey.id != integration_id)
    taken = session.scalars(statement.order_by(IntegrationKey.id).limit(1)).first()
    if taken is not None:
        raise Conflict(
            f"name {name!r} is taken by integration {taken.id} ({taken.type.value}); choose another name, or "
            f"revoke integration {taken.id} first",
            {"field": "name", "integration_id": taken.id},
        )


def shared_names(listed: list[IntegrationRead]) -> dict[str, list[int]]:
    """The names that more than one live integration of ``listed`` has (made before names were checked), with
    those integrations' ids."""
    ids: dict[str, list[int]] = {}
    for read in listed:
        if read.revoked_at is None:
            ids.setdefault(read.name, []).append(read.id)
    return {name: found for name, found in ids.items() if len(found) > 1}


def shared_name_warning(name: str, ids: list[int]) -> str:
    """What to tell an admin of a name ``shared_names`` found (server log, ``integration list``)."""
    listed = ", ".join(str(one) for one in ids)
    return (
        f"integrations {listed} are all named {name!r}: a rule, maintenance window or alert filter naming it "
        f"matches each of them. Rename all but one: warroom integration update ID --name NEW"
    )


def _read(row: IntegrationKey, now: datetime, org: OrgConfig | None) -> IntegrationRead:
    """The integration as shown, by every answer that shows one; with ``org``, its default service is checked
    against the org file (None: not checked, ``service_known`` null)."""
    read = IntegrationRead.model_validate(row)
    if org is not None and row.service is not None:
        read.service_known = org.service(row.service) is not None
    if read.previous_valid_until is not None and (read.previous_valid_until <= now or row.revoked_at):
        read.previous_valid_until = None  # over: nothing but the current key works
    until = read.previous_headers_valid_until
    if until is None or until <= now or row.revoked_at:
        # over (or never): only the current header names are read
        read.previous_signature_header = read.previous_timestamp_header = None
        read.previous_headers_valid_until = None
    return read


def get_integration(session: Session, integration_id: int) -> IntegrationKey:
    return get_or_404(session, IntegrationKey, integration_id, f"integration with id {integration_id}")


def list_integrations(session: Session, org: OrgConfig | None = None) -> list[IntegrationRead]:
    """Every integration, revoked ones too; with ``org``, each default service is checked against it."""
    now = utcnow()
    rows = session.scalars(select(IntegrationKey).order_by(IntegrationKey.id))
    return [_read(row, now, org) for row in rows]


def with_lost_service(listed: list[IntegrationRead]) -> list[IntegrationRead]:
    """The live ones of ``listed`` (checked against an org file) whose default service the file lacks. Their
    alerts still get the name, but nothing routes on it: the server warns of them when it starts."""
    return [read for read in listed if read.service_known is False and read.revoked_at is None]


def lost_service_warning(integration: IntegrationRead) -> str:
    """What to tell an admin of an integration ``with_lost_service`` found (server log, integration list)."""
    return (
        f"integration {integration.id} ({integration.name}): the org file has no service "
        f"{integration.service!r}; its alerts get that name, but no rule, maintenance window or incident "
        f"knows it. Give it another: warroom integration update {integration.id} --service NAME (or "
        "--no-service)"
    )


@dataclass(frozen=True)
class IntegrationNames:
    """Integration names by id, for conditions that name integrations (``AlertConditions.integrations``)."""

    by_id: Mapping[int, str] = dataclass_field(default_factory=dict)

    def of(self, integration_id: int | None) -> str | None:
        """The name of the integration an alert came in through (None: none, or not looked up)."""
        return None if integration_id is None else self.by_id.get(integration_id)


def names_by_id(session: Session, *, needed: bool = True) -> IntegrationNames:
    """Every integration's name, by id (revoked ones too: their alerts are still around). Not ``needed``
    (no condition names an integration): no lookup, and every alert's integration reads as None."""
    if not needed:
        return IntegrationNames()
    rows = session.execute(select(IntegrationKey.id, IntegrationKey.name))
    return IntegrationNames({row.id: row.name for row in rows})


def revoke_integration(session: Session, *, org: OrgConfig | None, integration_id: int) -> IntegrationRevoked:
    """Idempotent, as revoking a token is: one revoked already is answered as it is, ``unchanged``."""
    row = get_integration(session, integration_id)
    unchanged = row.revoked_at is not None
    if not unchanged:
        row.revoked_at = utcnow()
    _forget_replaced(row)  # a revoked integration accepts no key: keep no secret it no longer needs
    return IntegrationRevoked(**_read(row, utcnow(), org).model_dump(), unchanged=unchanged)


def update_integration(
    session: Session, *, org: OrgConfig, integration_id: int, changes: IntegrationUpdate
) -> IntegrationRead:
    """Rename an integration, set or clear its default service, or change the header names its contact point
    signs under. The key, the signing secret and the dedup scope stay. Only the fields set in ``changes``
    change; a new default service applies to alerts opened from then on."""
    given = changes.model_fields_set - {"grace"}
    if not given:
        raise InvalidInput(
            "nothing to change: give name, service, signature_header or timestamp_header", {"field": "body"}
        )
    check_grace(changes.grace)  # even when the names stay: a bad value is refused, not ignored
    row = get_integration(session, integration_id)
    if row.revoked_at is not None:
        raise Conflict(f"integration {row.id} ({row.name}) is revoked", {"field": "integration_id"})
    if "name" in given:
        name = check_name(changes.name or "")
        if name != row.name:  # keeping its name is no conflict, even one it shares from before the check
            check_name_free(session, name, integration_id=row.id)
        row.name = name
    if "service" in given:
        if changes.service is not None:
            org.check_services([changes.service], "service")
        row.service = changes.service
    signature_header = changes.signature_header if "signature_header" in given else row.signature_header
    timestamp_header = changes.timestamp_header if "timestamp_header" in given else row.timestamp_header
    _check_header_names(row.signing_secret is not None, signature_header, timestamp_header)
    now = utcnow()
    if (signature_header, timestamp_header) != (row.signature_header, row.timestamp_header):
        if changes.grace:
            # The contact point is changed separately: until then its deliveries come under the old names.
            row.previous_signature_header = row.signature_header
            row.previous_timestamp_header = row.timestamp_header
            row.previous_headers_valid_until = now + changes.grace
        else:
            row.previous_signature_header = row.previous_timestamp_header = None
            row.previous_headers_valid_until = None
    row.signature_header = signature_header
    row.timestamp_header = timestamp_header
    session.flush()
    return _read(row, now, org)


def _forget_replaced(row: IntegrationKey) -> None:
    row.previous_key_hash = None
    row.previous_signing_secret = None
    row.previous_valid_until = None


@job_handler(FORGET_REPLACED_KEY)
def forget_replaced_key(context: AppContext, session: Session, job: Job) -> dict[str, Any]:
    """Once a rotation's grace period is over, erase the replaced key's hash and signing secret: they
    authenticate nothing any more, and a secret kept is a secret that can leak."""
    row = session.get(IntegrationKey, job.payload["integration_id"])
    if row is None or row.previous_valid_until is None:
        return {"forgot": False, "reason": "nothing replaced is kept"}
    if row.previous_valid_until > utcnow():
        # A later rotation set a later deadline; that rotation's own job erases it.
        return {"forgot": False, "reason": "the grace period of a later rotation is still running"}
    _forget_replaced(row)
    return {"forgot": True}


def check_grace(grace: timedelta) -> None:
    """How long something replaced keeps working (a key, a signing secret, header names): 0s to 7 days."""
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        raise InvalidInput(
            f"grace must be between 0s and {format_duration(MAX_ROTATION_GRACE)} "
            f"(got {format_duration(grace) if grace >= timedelta(0) else 'a negative duration'})",
            {"field": "grace"},
        )


def rotate_integration(
    session: Session,
    *,
    org: OrgConfig | None,
    integration_id: int,
    grace: timedelta = DEFAULT_ROTATION_GRACE,
    signing_secret: str | None = None,
) -> IntegrationCreated:
    """Give the integration a new key, and a new signing secret if it signs (``signing_secret``, or a
    generated one). The replaced ones keep working for ``grace``. Rotating again within a grace period ends
    the earlier replaced key: only the latest replaced key works alongside the current one."""
    check_grace(grace)
    row = get_integration(session, integration_id)
    if row.revoked_at is not None:
        raise Conflict(
            f"integration {row.id} ({row.name}) is revoked; create a new integration instead",
            {"field": "integration_id"},
        )
    if signing_secret is not None:
        if row.signing_secret is None:
            raise InvalidInput(
                f"signing_secret: integration {row.id} does not sign its deliveries",
                {"field": "signing_secret"},
            )
        signing_secret = check_signing_secret(signing_secret)
        if signing_secret == row.signing_secret:
            raise InvalidInput(
                "signing_secret: the new signing secret must differ from the one in use",
                {"field": "signing_secret"},
            )
    now = utcnow()
    secret = secrets.token_hex(16)
    keep_previous = grace > timedelta(0)
    row.previous_key_hash = row.key_hash if keep_previous else None
    # Its uses after the rotation only: one from before would say a source still sends with it when it may
    # already have moved to the new key.
    row.previous_key_last_used_at = None
    row.last_used_at = None
    row.previous_signing_secret = row.signing_secret if keep_previous else None
    row.previous_valid_until = now + grace if keep_previous else None
    if row.previous_valid_until is not None:
        jobs.enqueue(
            session,
            kind=FORGET_REPLACED_KEY,
            payload={"integration_id": row.id},
            run_at=row.previous_valid_until,
        )
    row.key_hash = hash_secret(secret)
    row.prefix = secret[:8]
    if row.signing_secret is not None:
        row.signing_secret = signing_secret or new_signing_secret()
    row.rotated_at = now
    session.flush()
    return IntegrationCreated(
        **_read(row, now, org).model_dump(), key=secret, signing_secret=row.signing_secret
    )


_LOOKUP = select(
    IntegrationKey.id,
    IntegrationKey.name,
    IntegrationKey.type,
    IntegrationKey.service,
    IntegrationKey.revoked_at,
    IntegrationKey.signing_secret,
    IntegrationKey.key_hash,
    IntegrationKey.previous_signing_secret,
    IntegrationKey.signature_header,
    IntegrationKey.timestamp_header,
    IntegrationKey.previous_signature_header,
    IntegrationKey.previous_timestamp_header,
    # Compared in SQL: driver rows carry no result processing (SQLite would hand back text).
    (IntegrationKey.previous_valid_until > bindparam("now", type_=UTCDateTime())).label("in_grace"),
    (IntegrationKey.previous_headers_valid_until > bindparam("now", type_=UTCDateTime())).label(
        "headers_in_grace"
    ),
    (IntegrationKey.last_used_at > bindparam("recent", type_=UTCDateTime())).label("used_recently"),
    (IntegrationKey.previous_key_last_used_at > bindparam("recent", type_=UTCDateTime())).label(
        "previous_used_recently"
    ),
).where(
    (IntegrationKey.key_hash == bindparam("key_hash"))
    | (IntegrationKey.previous_key_hash == bindparam("key_hash"))
)
_LOOKUPS: dict[str, DriverStatement] = {}
# A key's last use is written at most this often: one small UPDATE a minute, not one per delivery.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def authenticate_integration(
    session: Session, secret: str | None, expected: IntegrationType, *, record_use: bool = True
) -> IntegrationIdentity:
    return identify_integration(session.connection(), secret, expected, record_use=record_use)


def identify_integration(
    connection: Connection, secret: str | None, expected: IntegrationType, *, record_use: bool = True
) -> IntegrationIdentity:
    """401 for a missing, unknown or revoked key; 403 for a key made for another kind of source.

    ``record_use``: write the key's last use (at most once a minute). False for a check that writes nothing
    (a mail recipient, before its message is stored), or when the delivery may yet be refused in a
    transaction that commits all the same (a bad signature in a shared intake batch): the caller then
    calls ``record_use`` once it has accepted one. A refused delivery is not a use.

    The identity carries the integration's signing secrets, if it has any: the caller checks each delivery's
    signature with them (``auth.signing.verify``).

    Driver SQL, compiled once: this runs for every batch of alert deliveries.
    """
    if not secret:
        raise Unauthorized("an integration key is required: send ?key=<key> or 'Authorization: Bearer <key>'")
    dialect = connection.dialect
    lookup = _LOOKUPS.get(dialect.name)
    if lookup is None:
        lookup = _LOOKUPS[dialect.name] = DriverStatement.compile(_LOOKUP, dialect)
    key_hash = hash_secret(secret)
    now = utcnow()
    rows = lookup.query(connection, {"key_hash": key_hash, "now": now, "recent": now - LAST_USED_RESOLUTION})
    if not rows:
        raise Unauthorized("the integration key is not valid")
    (
        integration_id,
        name,
        kind,
        service,
        revoked_at,
        signing_secret,
        current_hash,
        previous_secret,
        signature_header,
        timestamp_header,
        previous_signature_header,
        previous_timestamp_header,
        in_grace,
        headers_in_grace,
        used_recently,
        previous_used_recently,
    ) = rows[0]
    if revoked_at is not None:
        raise Unauthorized("the integration key was revoked")
    # The replaced key and signing secret count only while the rotation's grace period lasts.
    in_grace = bool(in_grace)
    if current_hash != key_hash and not in_grace:
        raise Unauthorized("the integration key was replaced (the integration was rotated); use its new key")
    if kind != expected.value:
        raise Forbidden(
            f"this key is for {kind} payloads; this endpoint takes {expected.value}",
            {"field": "key", "allowed": [expected.value]},
        )
    current = current_hash == key_hash
    signing_secrets = (signing_secret,) if signing_secret is not None else ()
    if in_grace and previous_secret is not None:
        signing_secrets += (previous_secret,)
    identity = IntegrationIdentity(
        id=integration_id,
        name=name,
        type=expected,
        service=service,
        signing_secrets=signing_secrets,
        signature_header=signature_header,
        timestamp_header=timestamp_header,
        previous_headers=(previous_signature_header, previous_timestamp_header) if headers_in_grace else None,
        by_previous_key=not current,
        use_unrecorded=not (used_recently if current else previous_used_recently),
    )
    if record_use:
        record_use_of(connection, identity)
    return identity


def record_use_of(connection: Connection, identity: IntegrationIdentity) -> None:
    """Write the last use of the key ``identity`` came with, unless it was written within the last minute
    (or already for this identity): for a delivery that was accepted."""
    if not identity.use_unrecorded:
        return
    column = (
        IntegrationKey.previous_key_last_used_at if identity.by_previous_key else IntegrationKey.last_used_at
    )
    connection.execute(
        update(IntegrationKey).where(IntegrationKey.id == identity.id).values({column: utcnow()})
    )
    identity.use_unrecorded = False
