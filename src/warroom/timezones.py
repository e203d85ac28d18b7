"""Time zones as people write them in the org file: IANA names such as Europe/Berlin."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator


def check_zone(value: str) -> str:
    """The name, if the system's time zone database knows it; ValueError saying how to write one."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
    return value


def _with_offset(value: datetime) -> datetime:
    # A time without an offset means something else on every machine that reads it.
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-24T09:00:00+01:00 or ...Z")
    return value


# A moment given in an API body: ISO 8601 with its UTC offset.
OffsetDatetime = Annotated[datetime, AfterValidator(_with_offset)]
