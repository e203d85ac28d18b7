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


class Unauthorized(WarroomError):
    status = 401
    code = "unauthorized"


class Forbidden(WarroomError):
    status = 403
    code = "forbidden"
