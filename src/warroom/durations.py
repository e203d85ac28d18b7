"""Durations as people write them in the org file: ``5m``, ``2h``, ``1h30m``, ``90s``, or ISO 8601."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from warroom.clock import clock
from warroom.errors import InvalidInput
from warroom.fields import in_era

_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(\d+\s*[smhdw]\s*)+$")
# Left to pydantic: ISO 8601 (P1DT2H) and "[-][D day[s],] HH:MM:SS[.f]".
_PYDANTIC_FORMS = re.compile(r"^\s*-?P|:|day", re.IGNORECASE)
# Not a duration, though pydantic reads the first as one: `--since 09:00` meant nine o'clock, not 9 hours.
_TIME_LIKE = re.compile(r"^\s*\d{1,2}:\d\d\s*$|\d{4}-\d\d-\d\d")
# 18:00:30: pydantic reads it as a duration (18 hours), which a period's bound never means by it.
_CLOCK_WITH_SECONDS = re.compile(r"^\d{1,2}:\d\d:\d\d(\.\d+)?$")
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


class _TooLong(ValueError):
    """A duration past ``_LONGEST`` (a period's own bound says more, ``_period_length``)."""


class _NoUnit(ValueError):
    """A bare number where a request's duration must say its unit."""


class _OutOfRange(ValueError):
    """A period's length out of its bounds."""


def _too_long(value: Any) -> ValueError:
    return _TooLong(f"{str(value).strip()!r} is too long a duration (at most {_LONGEST.days}d)")


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
        raise _NoUnit(f"{bare} has no unit: write {bare}s, {bare}m, {bare}h or {bare}d")
    return parse_duration(value)


# A duration in a request (a body's field or a query parameter), with its unit.
RequestDuration = Annotated[
    timedelta,
    BeforeValidator(_with_unit),
    AfterValidator(_within_longest),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(DURATION_JSON_SCHEMA),
]


# --- periods of lists and reports: ``since`` and ``until`` -------------------------------------------------

# How far back a period reaches when given as a duration (``since=2h``); a time
# (``since=2026-12-07T00:00:00Z``) may be any, from 1970 to 2200.
LONGEST_PERIOD = timedelta(days=366)
_PERIOD_BOUNDS = f"from 1s to {format_duration(LONGEST_PERIOD)}"
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_INSTANT: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)
_ISO_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _period_length(value: Any) -> timedelta:
    """A period's length as a request gives it, with its unit, from 1s to 366d; one message for any length
    out of that, however far out (a length past 100 years is refused by ``parse_duration`` first)."""
    length: timedelta | None
    try:
        parsed = _with_unit(value)
    except _TooLong:
        length = None
    else:
        try:
            length = parsed if isinstance(parsed, timedelta) else _ISO_DURATION.validate_python(parsed)
        except ValidationError:  # an ISO 8601 form pydantic cannot read either (or past its own bounds)
            raise ValueError(
                f"{str(value).strip()!r} is not a duration: write it like 90s, 5m, 1h30m or 2d"
            ) from None
    if length is None or not timedelta(0) < length <= LONGEST_PERIOD:
        raise _OutOfRange(f"{str(value).strip()!r} is out of range: a period is {_PERIOD_BOUNDS} long")
    return length


def names_a_date(text: str) -> bool:
    """Whether a period's bound is written as a time (it holds a date, 2026-12-07…), not as a duration."""
    return _DATE.search(text) is not None


def time_of_day_problem(text: str) -> str | None:
    """What is wrong with a period's bound written as a time of day of no day (``18:00``), or None when it is
    not one. The CLI says it before sending anything; the API answers it as a 422."""
    text = text.strip()
    if names_a_date(text) or not (_TIME_LIKE.search(text) or _CLOCK_WITH_SECONDS.match(text)):
        return None
    return (
        f"{text!r} is a time of day without its date: give a time with its date and offset "
        "(2026-12-07T09:00:00Z), or how long ago (2h)"
    )


def _period_bound(value: Any) -> Any:
    """A bound of a list's period (``since``, ``until``): a duration back from now (``2h``, 1s to 366d), or a
    time with its offset (ISO 8601, ``2026-12-07T00:00:00Z``); an aware UTC datetime either way."""
    text = str(value).strip()
    if names_a_date(text):
        try:
            return in_era(_INSTANT.validate_python(text))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time with its offset: write it like 2026-12-07T00:00:00Z or "
                "2026-12-07T09:00:00+02:00 (ISO 8601), from 1970 to 2200"
            ) from None
    problem = time_of_day_problem(text)  # 09:00, 18:00:30: a time of day, of no day
    if problem is not None:
        raise ValueError(problem)
    try:
        length = _period_length(value)
    except _OutOfRange:
        raise ValueError(
            f"{text!r} is out of range: give a duration {_PERIOD_BOUNDS} back, or a time with its offset "
            "(2026-12-07T00:00:00Z) for longer ago"
        ) from None
    except _NoUnit:
        raise
    except ValueError:
        raise ValueError(
            f"{text!r} is neither a duration (90s, 5m, 1h30m, 2d) nor a time with its offset "
            "(2026-12-07T00:00:00Z)"
        ) from None
    return clock.now() - length


_PERIOD_BOUND_JSON_SCHEMA: dict[str, Any] = {
    "type": "string",
    "description": "How long ago, as a duration from 1s to 366d (90s, 5m, 1h30m, 2d, 1w, PT2H); or a time "
    "with its offset, ISO 8601 (2026-12-07T00:00:00Z).",
    "examples": ["2h", "7d", "2026-12-07T00:00:00Z"],
}
_PERIOD_LENGTH_JSON_SCHEMA: dict[str, Any] = {
    **DURATION_JSON_SCHEMA,
    "description": "A duration from 1s to 366d, like 90s, 5m, 1h30m, 2d or 1w; or ISO 8601 (PT2H).",
}

# A list's ``since`` or ``until`` in a query: the instant it names (a duration counts back from now).
PeriodBound = Annotated[datetime, BeforeValidator(_period_bound), WithJsonSchema(_PERIOD_BOUND_JSON_SCHEMA)]

# A report's period (ending now) in a query: ``since=7d``.
PeriodLength = Annotated[
    timedelta,
    BeforeValidator(_period_length),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(_PERIOD_LENGTH_JSON_SCHEMA),
]


def check_period(since: datetime | None, until: datetime | None) -> None:
    """A period must not end before it starts: 422 naming ``until``, rather than an empty answer."""
    if since is not None and until is not None and until < since:
        raise InvalidInput(
            f"until ({until:%Y-%m-%d %H:%M:%S} UTC) is before since ({since:%Y-%m-%d %H:%M:%S} UTC)",
            {"field": "until"},
        )
