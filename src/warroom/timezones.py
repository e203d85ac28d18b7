"""Time zones as people write them in the org file: IANA names such as Europe/Berlin."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def check_zone(value: str) -> str:
    """The name, if the system's time zone database knows it; ValueError saying how to write one."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
    return value
