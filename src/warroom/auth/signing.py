"""Signed webhook deliveries: the HMAC signature Grafana's webhook contact point can add (``hmacConfig``).

Grafana (grafana/alerting ``http/hmac.go``) sends ``hex(HMAC-SHA256(secret, [ts + ":"] + body))`` in the
signature header (``X-Grafana-Alerting-Signature`` unless the contact point names another). ``ts`` (Unix
seconds) is signed and sent only when the contact point names a timestamp header; Warroom reads it under
``X-Grafana-Alerting-Signature-Timestamp``, or under the names the integration was created with, and then
also refuses deliveries more than five minutes from its clock (a replay, or clocks out of sync).

Unlike integration keys (only their sha256 is kept), a signing secret is stored as given: the server must
recompute the HMAC. Anyone who can read the database can sign deliveries for that integration.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from warroom.errors import InvalidInput, Unauthorized

SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
TIMESTAMP_HEADER = "X-Grafana-Alerting-Signature-Timestamp"
MAX_SKEW_SECONDS = 300
SECRET_MIN_LENGTH = 16
SECRET_MAX_LENGTH = 200

# The default of some grafana/alerting versions (its UI and docs say X-Grafana-Alerting-Signature).
_LEGACY_SIGNATURE_HEADER = "X-Grafana-Alert-Signature"
HEADER_MAX_LENGTH = 100
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_RESERVED_HEADERS = {"authorization", "content-type", "content-length", "host", "transfer-encoding"}


@dataclass(frozen=True, slots=True)
class SignedBody:
    """What a signature check needs, carried from the request to the intake writer (which knows the secret).

    ``body`` is the raw request body, exactly as received; the header values are raw bytes too.
    ``signature`` and ``timestamp`` are read under the default header names; ``headers`` keeps all of the
    request's, for an integration that names its own (``under``). ``signature_conflict`` and
    ``timestamp_conflict``: the header came more than once with different values (or Grafana's older
    signature header came with a different one), which ``verify`` refuses: a credential sent twice is
    ambiguous, and checking either copy would let a wrong one ride along with a right one.
    """

    body: bytes
    signature: bytes | None
    timestamp: bytes | None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    signature_conflict: bool = False
    timestamp_conflict: bool = False

    def under(self, signature_header: str | None, timestamp_header: str | None) -> SignedBody:
        """The signature and timestamp under the header names an integration chose (None: the default)."""
        if signature_header is None and timestamp_header is None:
            return self
        signature, signature_conflict = self.signature, self.signature_conflict
        timestamp, timestamp_conflict = self.timestamp, self.timestamp_conflict
        if signature_header is not None:
            signature, signature_conflict = _header(self.headers, signature_header)
        if timestamp_header is not None:
            timestamp, timestamp_conflict = _header(self.headers, timestamp_header)
        return SignedBody(
            self.body, signature, timestamp, self.headers, signature_conflict, timestamp_conflict
        )


def _same(value: bytes) -> bytes:
    """A signature or timestamp as compared: a copy that differs only in case or spacing is the same."""
    return value.strip().lower().removeprefix(b"sha256=")


def _header(headers: Iterable[tuple[bytes, bytes]], name: str) -> tuple[bytes | None, bool]:
    """The value of header ``name`` (ASGI raw headers: lower-case names), and whether it came more than once
    with different values."""
    wanted = name.lower().encode()
    values = [value for key, value in headers if key == wanted]
    if not values:
        return None, False
    return values[-1], len({_same(value) for value in values}) > 1


def signed_body(body: bytes, headers: Iterable[tuple[bytes, bytes]]) -> SignedBody:
    """The signature and timestamp headers of a request under the default names, and all its headers."""
    kept = tuple(headers)
    signature, signature_conflict = _header(kept, SIGNATURE_HEADER)
    legacy, legacy_conflict = _header(kept, _LEGACY_SIGNATURE_HEADER)
    if signature is None:
        signature, signature_conflict = legacy, legacy_conflict
    elif legacy is not None and (legacy_conflict or _same(legacy) != _same(signature)):
        signature_conflict = True  # a right signature under one name and a wrong one under the other
    timestamp, timestamp_conflict = _header(kept, TIMESTAMP_HEADER)
    return SignedBody(body, signature, timestamp, kept, signature_conflict, timestamp_conflict)


def check_header_name(name: str, field: str) -> str:
    """A header name Grafana can be told to use: an HTTP token, not one the request needs for itself."""
    if not _TOKEN.fullmatch(name) or len(name) > HEADER_MAX_LENGTH:
        raise InvalidInput(
            f"{field} must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~, "
            f"at most {HEADER_MAX_LENGTH} characters",
            {"field": field},
        )
    if name.lower() in _RESERVED_HEADERS:
        raise InvalidInput(f"{field} cannot be {name}: the request needs that header", {"field": field})
    return name


def new_signing_secret() -> str:
    """A fresh secret: 256 random bits as 64 hex characters."""
    return secrets.token_hex(32)


def check_signing_secret(secret: str, field: str = "signing_secret") -> str:
    """A secret someone chose: long enough to be worth signing with, and no edge whitespace to mistype."""
    if secret != secret.strip():
        raise InvalidInput(f"{field} must not start or end with whitespace", {"field": field})
    if not SECRET_MIN_LENGTH <= len(secret) <= SECRET_MAX_LENGTH:
        raise InvalidInput(
            f"{field} must be {SECRET_MIN_LENGTH} to {SECRET_MAX_LENGTH} characters long", {"field": field}
        )
    return secret


def verify(
    secrets: Sequence[str],
    signed: SignedBody | None,
    now: datetime,
    *,
    signature_header: str = SIGNATURE_HEADER,
    timestamp_header: str = TIMESTAMP_HEADER,
    sender: str = "Grafana's webhook contact point",
    timestamp_expected: bool = True,
) -> None:
    """Unauthorized unless ``signed`` carries the signature of its body (and of its timestamp, which must
    then be within ``MAX_SKEW_SECONDS`` of ``now``) made with one of ``secrets`` (several while a rotation's
    grace period lasts). Constant-time comparison. ``sender`` names where the secret is set, for the 401;
    ``timestamp_expected``: whether the 401 speaks of the timestamp header (not to a tool that sends none).

    The hex digest may carry a ``sha256=`` prefix, as GitHub and the tools that copy its webhooks send it."""
    signature = signed.signature if signed is not None else None
    if signed is not None and (signed.signature_conflict or signed.timestamp_conflict):
        header = signature_header if signed.signature_conflict else timestamp_header
        raise Unauthorized(
            f"the {header} header was sent more than once with different values"
            + (f" (or with a different {_LEGACY_SIGNATURE_HEADER})" if header == SIGNATURE_HEADER else "")
            + ": ambiguous credentials are refused",
            {"field": header},
        )
    if signed is None or not signature:
        raise Unauthorized(
            f"this integration requires signed requests: the {signature_header} header is missing "
            f"(set the HMAC secret in {sender})",
            {"field": signature_header},
        )
    timestamp = signed.timestamp
    if timestamp is not None and not (timestamp.isdigit() and len(timestamp) <= 12):
        raise Unauthorized(
            f"the {timestamp_header} header must be a Unix time in seconds", {"field": timestamp_header}
        )
    signed_part = timestamp + b":" + signed.body if timestamp is not None else signed.body
    signature = _same(signature)
    matches = [
        hmac.compare_digest(
            hmac.new(secret.encode(), signed_part, hashlib.sha256).hexdigest().encode(), signature
        )
        for secret in secrets  # every secret is tried, so timing does not tell which one matched
    ]
    if not any(matches):
        where = f"; a signed timestamp, if {sender} sends one, must be in {timestamp_header}"
        raise Unauthorized(
            f"the {signature_header} signature does not match the request body (check the HMAC secret"
            f"{where if timestamp_expected else ''})",
            {"field": signature_header},
        )
    if timestamp is not None and abs(now.timestamp() - int(timestamp)) > MAX_SKEW_SECONDS:
        raise Unauthorized(
            f"the signed timestamp is more than {MAX_SKEW_SECONDS} seconds from the server's clock "
            "(a replayed delivery, or clocks out of sync)",
            {"field": timestamp_header},
        )
