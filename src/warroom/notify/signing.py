"""HMAC-SHA256 signatures on outgoing webhooks, and the check a receiver runs.

The signature covers ``<timestamp>.<body>`` so a receiver can reject a captured request replayed
later: it verifies the HMAC with the shared secret and that the timestamp is recent.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime

SIGNATURE_HEADER = "X-Warroom-Signature"
TIMESTAMP_HEADER = "X-Warroom-Timestamp"
DELIVERY_HEADER = "X-Warroom-Delivery"
DEFAULT_TOLERANCE_SECONDS = 300


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The header value: ``sha256=<hex of HMAC-SHA256(secret, timestamp + "." + body)>``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(
    secret: str,
    *,
    timestamp: str,
    body: bytes,
    signature: str,
    now: datetime,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """True when ``signature`` matches and ``timestamp`` is within ``tolerance_seconds`` of ``now``."""
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - sent_at) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)
