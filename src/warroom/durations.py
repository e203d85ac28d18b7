"""Durations as people write them in the org file: ``5m``, ``2h``, ``1h30m``, ``90s``, or ISO 8601."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, WithJsonSchema

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(\d+\s*[smhdw]\s*)+$")
# Left to pydantic: ISO 8601 (P1DT2H) and "[-][D day[s],] HH:MM:SS[.f]".
_PYDANTIC_FORMS = re.compile(r"^\s*-?P|:|day", re.IGNORECASE)
# Not a duration, though pydantic reads the first as one: `--since 09:00` meant nine o'clock, not 9 hours.
_TIME_LIKE = re.compile(r"^\s*\d{1,2}:\d\d\s*$|\d{4}-\d\d-\d\d")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_LONGEST = timedelta(days=36500)


def parse_duration(value: Any) -> Any:
    """Accept ``1h30m`` style strings and plain seconds; ISO 8601 and ``HH:MM:SS`` are left to pydantic."""
    if isinstance(value, str):
        seconds: int | None = None
        if _WHOLE.match(value):
            seconds = sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
        elif value.strip().isascii() and value.strip().isdigit():
            seconds = int(value)
        if seconds is not None:
            # Past this, adding it to a date overflows (or timedelta itself does): no setting needs it.
            if seconds > _LONGEST.total_seconds():
                raise _too_long(value)
            return timedelta(seconds=seconds)
        if _TIME_LIKE.search(value):
            raise ValueError(
                f"{value!r} is a time or a date, not a duration: write how long, like 90s, 5m, 1h30m or 2d"
            )
        if not _PYDANTIC_FORMS.search(value):
            # Say how to write one, rather than pydantic's "invalid digit in duration".
            raise ValueError(f"{value!r} is not a duration: write it like 90s, 5m, 1h30m, 2d or 1w")
    return value


def _too_long(value: Any) -> ValueError:
    return ValueError(f"{str(value).strip()!r} is too long a duration (at most {_LONGEST.days}d)")


def _within_longest(value: timedelta) -> timedelta:
    """ISO 8601 forms too (P999999999D): past 100 years, adding one to a date overflows."""
    if abs(value) > _LONGEST:
        raise _too_long(format_duration(abs(value)))
    return value


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


def duration_between(
    low: timedelta, high: timedelta, what: str
) -> Callable[[timedelta | None], timedelta | None]:
    """A field validator: ``what`` must be from ``low`` to ``high`` (for ``field_validator(...)(...)``);
    None (an optional duration left out) passes."""

    def check(value: timedelta | None) -> timedelta | None:
        if value is not None and (value < low or value > high):
            raise ValueError(f"{what} must be between {format_duration(low)} and {format_duration(high)}")
        return value

    return check


def off_or_between(
    low: timedelta, high: timedelta, what: str
) -> Callable[[timedelta | None], timedelta | None]:
    """As ``duration_between``, and 0s (off) passes too."""
    within = duration_between(low, high, what)

    def check(value: timedelta | None) -> timedelta | None:
        if value is not None and value != timedelta(0) and (value < low or value > high):
            raise ValueError(
                f"{what} must be 0s (off) or between {format_duration(low)} and {format_duration(high)}"
            )
        return within(value) if value else value

    return check


# What the API takes and answers, for the OpenAPI document: pydantic's own would say ``format: duration``
# (ISO 8601 only), and clients that check formats would refuse 2h before sending it.
DURATION_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "A duration: a number and a unit, or several (s, m, h, d, w), like 90s, 5m, 1h30m, 2d or "
    "1w; or ISO 8601 (PT2H). Answers use the first form.",
    "examples": ["90s", "5m", "1h30m", "2d", "1w", "PT2H"],
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    AfterValidator(_within_longest),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]


def _with_unit(value: Any) -> Any:
    """What a person or a script sends must say its unit: the org file reads a bare ``30`` as seconds, as it
    always has, but a snooze of ``30`` meant minutes more often than not."""
    bare = str(value).strip() if isinstance(value, int | float | str) and not isinstance(value, bool) else ""
    if bare and (not isinstance(value, str) or (bare.isascii() and bare.isdigit())):
        raise ValueError(f"{bare} has no unit: write {bare}s, {bare}m, {bare}h or {bare}d")
    return parse_duration(value)


# A duration in a request (a body's field or a query parameter), with its unit.
RequestDuration = Annotated[
    timedelta,
    BeforeValidator(_with_unit),
    AfterValidator(_within_longest),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]
