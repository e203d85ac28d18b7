"""Domain errors. Services raise these; the API turns them into the one JSON error shape."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# An error's ``details``, as every error answer in Warroom's shape has it: null, or a list of entries, each a
# JSON object with a ``message`` and, when it is about one field of the request (a body field, a query or
# path parameter, a header), that field's name as ``field``; an entry may say more (``allowed`` values, the
# ``given`` ones, a ``location`` and ``line`` in the org file, the ``status`` an incident is in).
ErrorDetails = list[dict[str, Any]]

# The header an API client marks a POST with so that sending it again is safe (``auth.idempotency``), and the
# code of the 409 a retry gets while the first is finishing; here, where the light client can import them.
IDEMPOTENCY_HEADER = "Idempotency-Key"
IDEMPOTENCY_IN_USE_CODE = "idempotency_key_in_use"


def error_details(
    message: str, details: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
) -> ErrorDetails | None:
    """``details`` in the one shape (``ErrorDetails``). A single mapping is the error's one entry, its message
    the error's own unless it has one: ``InvalidInput("since must be ...", {"field": "since"})``."""
    if details is None:
        return None
    if isinstance(details, Mapping):
        entry = {"field": details["field"]} if details.get("field") is not None else {}
        entry["message"] = message
        entry.update((name, value) for name, value in details.items() if name != "field")
        return [entry]
    return [dict(entry) for entry in details]


def error_body(code: str, message: str, details: ErrorDetails | None = None) -> dict[str, Any]:
    """Warroom's one error shape (the OpenAPI document's ``Error``)."""
    return {"error": {"code": code, "message": message, "details": details}}


def field_at_fault(details: ErrorDetails | None) -> str | None:
    """The field the first entry of ``details`` names, if any."""
    field = details[0].get("field") if details else None
    return field if isinstance(field, str) else None


class WarroomError(Exception):
    """Base for errors a client caused; ``status`` is the HTTP status the API answers with, ``details`` what
    is at fault (``error_details``)."""

    status = 400
    code = "bad_request"

    def __init__(
        self, message: str, details: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = error_details(message, details)


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

# A database without the tables this version uses (dropped, or a new database never upgraded): not the
# client's fault either. 503 as well, so that senders keep their deliveries until someone runs the upgrade,
# with the code /healthz answers then; the missing table is named in the server's log.
SCHEMA_MISSING_CODE = "wrong_schema"
SCHEMA_MISSING_MESSAGE = (
    "the database does not have this Warroom's schema (a table is missing: dropped, or the database was "
    "never upgraded): run warroom db upgrade"
)
# The same for a database at this version's revision whose tables were dropped: ``db upgrade`` has nothing to
# run there (it says the database is up to date), so the advice is /healthz's.
TABLES_DROPPED_MESSAGE = (
    "the database is at this Warroom's schema revision but a table is missing (were Warroom's tables "
    "dropped?): restore it from a backup, or empty it and run warroom db upgrade"
)
