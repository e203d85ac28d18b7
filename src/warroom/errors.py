"""Domain errors. Services raise these; the API turns them into the one JSON error shape."""

from __future__ import annotations

from typing import Any


class WarroomError(Exception):
    """Base for errors a client caused; ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(WarroomError):
    status = 404
    code = "not_found"


class InvalidInput(WarroomError):
    status = 422
    code = "invalid"


class Conflict(WarroomError):
    status = 409
    code = "conflict"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class PayloadTooLarge(WarroomError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(WarroomError):
    status = 415
    code = "unsupported_media_type"


class Unauthorized(WarroomError):
    status = 401
    code = "unauthorized"


class Forbidden(WarroomError):
    status = 403
    code = "forbidden"


# A database that cannot be used right now (down, restarting, locked past the busy timeout, out of
# connections) is not the client's fault and not a bug: 503 with Retry-After, so senders and clients retry.
# The detail stays in the server's log; it may name hosts and files.
UNAVAILABLE_CODE = "database_unavailable"
UNAVAILABLE_MESSAGE = "the database is unavailable right now; retry later"
UNAVAILABLE_RETRY_AFTER_SECONDS = 5
