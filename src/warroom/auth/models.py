from __future__ import annotations

from datetime import datetime

from sqlalchemy import Enum, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from warroom.auth.enums import IntegrationType as IntegrationType
from warroom.auth.enums import Role as Role
from warroom.db import Base, UTCDateTime, utcnow

_ACTIVE_TOKEN = "revoked_at IS NULL"


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (
        # Two active tokens cannot share a name (``service.create_token``), held by the database too, so two
        # requests creating one name at once cannot both succeed (migration 0042).
        Index(
            "uq_api_tokens_active_name",
            "name",
            unique=True,
            sqlite_where=text(_ACTIVE_TOKEN),
            postgresql_where=text(_ACTIVE_TOKEN),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[Role] = mapped_column(Enum(Role, native_enum=False, length=20))
    # sha256 of the secret: tokens are long random strings, so a fast hash is enough and keeps auth cheap.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IntegrationKey(Base):
    """A monitoring source's key. Only its sha256 is stored, like API tokens.

    ``signing_secret`` (grafana and webhook integrations) is stored as given: the server recomputes each
    delivery's HMAC with it.

    Rotation replaces the key (and the signing secret) but keeps the integration, so alerts that are open
    under it still dedup and resolve. The replaced key and secret keep working until ``previous_valid_until``,
    while the source's configuration is updated.
    """

    __tablename__ = "integration_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[IntegrationType] = mapped_column(Enum(IntegrationType, native_enum=False, length=20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    signing_secret: Mapped[str | None] = mapped_column(String(200))
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    previous_key_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    previous_signing_secret: Mapped[str | None] = mapped_column(String(200))
    previous_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Header names the Grafana contact point was told to use; NULL: Grafana's defaults.
    signature_header: Mapped[str | None] = mapped_column(String(100))
    timestamp_header: Mapped[str | None] = mapped_column(String(100))
    # The names before the last change, read too until previous_headers_valid_until (the contact point is
    # changed by someone else, maybe later); NULL names are Grafana's defaults, as above.
    previous_signature_header: Mapped[str | None] = mapped_column(String(100))
    previous_timestamp_header: Mapped[str | None] = mapped_column(String(100))
    previous_headers_valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the key last authenticated a delivery, to the minute (intake writes it at most once a minute), and
    # the replaced key during a rotation's grace: is the sender still on the old one?
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    previous_key_last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # A service of the org file: the service of the integration's alerts and changes that name none (as a
    # PagerDuty integration belongs to its service). A service the payload names wins.
    service: Mapped[str | None] = mapped_column(String(200))

    @property
    def signing(self) -> bool:
        return self.signing_secret is not None


class IdempotentRequest(Base):
    """A write an API client marked with an ``Idempotency-Key`` (``auth.idempotency``): recorded in the
    write's own transaction, so a retry of it finds it done and gets its answer again instead of doing it
    twice. Kept a day (``KEEP_FOR``)."""

    __tablename__ = "idempotent_requests"
    __table_args__ = (Index("uq_idempotent_requests_key", "caller", "key", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # sha256 of the caller's API token: a key is the caller's own, as the request it names is.
    caller: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    # sha256 of the method, path, query and body: the same key sent with another request is refused.
    fingerprint: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    # The answer, once sent: None while the request is finishing, or if the server stopped before keeping it.
    status_code: Mapped[int | None] = mapped_column()
    response: Mapped[bytes | None] = mapped_column(LargeBinary())
    content_type: Mapped[str | None] = mapped_column(String(200))
