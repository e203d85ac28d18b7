"""Spans of time a person sets up to start now or later (a maintenance window, an on-call override), and the
limits they share: a start at most 90 days ahead, an end still to come, and a longest length (a week for a
window, a month for an override)."""

from __future__ import annotations

from datetime import datetime, timedelta

from warroom.durations import format_duration
from warroom.errors import InvalidInput

# Longer than any planned work: more likely a typo that would silence services for weeks.
MAX_LENGTH = timedelta(days=7)
MAX_LEAD = timedelta(days=90)


def check_span(
    what: str,
    *,
    now: datetime,
    starts_at: datetime,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    start_field: str = "starts_at",
    end_field: str = "ends_at",
    duration_field: str = "duration",
    max_length: timedelta = MAX_LENGTH,
) -> datetime:
    """The end of a ``what`` (``"window"``, ``"override"``) from ``starts_at`` until ``ends_at`` or for
    ``duration`` (one of the two). Refused with a 422 that names the field: a start more than 90 days ahead,
    an end not after the start or already past (it would do nothing), longer than ``max_length``."""
    if starts_at > now + MAX_LEAD:
        raise InvalidInput(
            f"{start_field} may be at most {format_duration(MAX_LEAD)} ahead", {"field": start_field}
        )
    if ends_at is None:
        assert duration is not None, "an end or a duration"
        check_length(what, starts_at, starts_at, duration_field, duration, max_length=max_length)
        ends_at = starts_at + duration
    if ends_at <= starts_at:
        raise InvalidInput(f"the {what} must end after it starts", {"field": end_field})
    if ends_at <= now:
        raise InvalidInput(f"the {what} would already be over", {"field": end_field})
    check_length(
        what, starts_at, ends_at, duration_field if duration is not None else end_field, max_length=max_length
    )
    return ends_at


def check_length(
    what: str,
    starts_at: datetime,
    ends_at: datetime,
    field: str,
    added: timedelta = timedelta(0),
    *,
    max_length: timedelta = MAX_LENGTH,
) -> None:
    """``ends_at + added`` no later than ``max_length`` after ``starts_at`` (checked before adding, which
    could overflow the calendar)."""
    length = ends_at - starts_at
    if length > max_length or added > max_length - length:
        article = "an" if what[:1] in "aeiou" else "a"
        raise InvalidInput(
            f"{article} {what} lasts at most {format_duration(max_length)} "
            f"(this one would last {format_duration(length + added)})",
            {"field": field},
        )
