"""Signed, expiring acknowledge links: HMAC-SHA256 over incident id, person and expiry.

The token is ``<incident>.<person, base64url>.<expiry, unix seconds>.<signature, base64url>``; the
signature uses the server's secret key (``Settings.resolved_secret_key``), so only the server can
mint a link and any change to its parts breaks it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from warroom.db import utcnow
from warroom.errors import Forbidden, WarroomError

ACK_LINK_TTL = timedelta(hours=24)


class LinkExpired(WarroomError):
    status = 410
    code = "expired"


@dataclass(frozen=True)
class AckClaim:
    incident_id: int
    person: str
    expires_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(key: bytes, incident_id: int, person: str, expiry: int) -> bytes:
    message = f"ack\n{incident_id}\n{person}\n{expiry}".encode()
    return hmac.new(key, message, hashlib.sha256).digest()


def make_ack_token(key: bytes, *, incident_id: int, person: str, expires_at: datetime | None = None) -> str:
    expiry = int((expires_at or utcnow() + ACK_LINK_TTL).timestamp())
    signature = _signature(key, incident_id, person, expiry)
    return f"{incident_id}.{_b64(person.encode())}.{expiry}.{_b64(signature)}"


def verify_ack_token(key: bytes, token: str) -> AckClaim:
    """The claim in a valid token; Forbidden if it was altered or forged, LinkExpired if too old."""
    parts = token.split(".")
    invalid = Forbidden("this acknowledge link is not valid (it was changed or not issued here)")
    if len(parts) != 4 or not all(
        part.isascii() and part.isdigit() and len(part) <= 20 for part in (parts[0], parts[2])
    ):
        raise invalid  # 20 digits hold any id and expiry we issue; longer ones would only cost a bignum
    try:
        person = _unb64(parts[1]).decode()
        signature = _unb64(parts[3])
    except (ValueError, UnicodeDecodeError):
        raise invalid from None
    incident_id, expiry = int(parts[0]), int(parts[2])
    if not hmac.compare_digest(signature, _signature(key, incident_id, person, expiry)):
        raise invalid
    if token != f"{incident_id}.{_b64(person.encode())}.{expiry}.{_b64(signature)}":
        # The same signed bytes written another way (a leading zero, base64 padding or spare bits): one link
        # has one spelling, so a token can be compared, logged and revoked as a string.
        raise invalid
    try:
        expires_at = datetime.fromtimestamp(expiry, UTC)
    except (OverflowError, OSError, ValueError):
        raise invalid from None
    if utcnow() >= expires_at:
        raise LinkExpired(f"this acknowledge link expired at {expires_at:%Y-%m-%d %H:%M} UTC")
    return AckClaim(incident_id, person, expires_at)


def ack_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/api/v1/ack/{token}"
