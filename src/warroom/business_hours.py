"""The org file's business hours: when people are at work, on the org's own wall clock, less public holidays.

They set the "next business day" response target of low severities, and rules whose incident waits for them
(``incident.wait_for_business_hours``): an alert that fires at night opens its incident in the morning, if it
is still open then. Public holidays come from the ``holidays`` library, by country and optional subdivision
(a German state, a US state), plus the org's own closed days.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from warroom.timezones import check_zone

# How far ahead a next opening is looked for: a year of days, whatever the holidays.
_LOOKAHEAD_DAYS = 400


@lru_cache(maxsize=32)
def _public_holidays(country: str, subdivision: str | None) -> Any:
    """The country's calendar (years are filled in as they are asked for). Imported here: the library's
    calendars take a while to import, and only org files that name a country need them."""
    from holidays import country_holidays

    return country_holidays(country, subdiv=subdivision)


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_zone: str = "UTC"
    start: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    end: str = Field(
        default="17:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Before start: the hours run past midnight (a night shift, 22:00 to 06:00) and belong to "
        "the day they begin; equal to start: round the clock.",
    )
    weekdays: list[int] = Field(
        default_factory=lambda: [0, 1, 2, 3, 4], min_length=1, description="0 is Monday."
    )
    holiday_country: str | None = Field(
        default=None, description="Public holidays of this country are closed (ISO 3166 code, e.g. DE)."
    )
    holiday_subdivision: str | None = Field(
        default=None, description="And of this state or province (e.g. BE for Berlin, CA for California)."
    )
    holidays: list[date] = Field(default_factory=list, description="More closed days (e.g. 2026-12-24).")

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @field_validator("weekdays")
    @classmethod
    def _days_of_the_week(cls, values: list[int]) -> list[int]:
        if any(not 0 <= value <= 6 for value in values):
            raise ValueError("weekdays are 0 (Monday) to 6 (Sunday)")
        return sorted(set(values))

    @model_validator(mode="after")
    def _consistent(self) -> BusinessHours:
        if self.holiday_subdivision is not None and self.holiday_country is None:
            raise ValueError("holiday_subdivision needs holiday_country")
        if self.holiday_country is not None:
            try:
                _public_holidays(self.holiday_country, self.holiday_subdivision)
            except NotImplementedError as exc:
                raise ValueError(f"holidays: {exc}") from None
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def _at(self, day: date, clock_time: str) -> datetime:
        hour, minute = (int(part) for part in clock_time.split(":"))
        return datetime.combine(day, time(hour, minute), tzinfo=self.zone).astimezone(UTC)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() not in self.weekdays or day in self.holidays:
            return False
        if self.holiday_country is None:
            return True
        return day not in _public_holidays(self.holiday_country, self.holiday_subdivision)

    def holiday_name(self, day: date) -> str | None:
        """The public holiday's name (or "closed" for the org's own day), None on other days."""
        if day in self.holidays:
            return "closed"
        if self.holiday_country is None:
            return None
        name = _public_holidays(self.holiday_country, self.holiday_subdivision).get(day)
        return str(name) if name is not None else None

    @property
    def overnight(self) -> bool:
        """The hours end on the next day (or run round the clock)."""
        return self.end <= self.start

    def hours_of(self, day: date) -> tuple[datetime, datetime]:
        """When the business hours that begin on ``day`` open and close (UTC), whether or not it is a
        business day."""
        closing_day = day + timedelta(days=1) if self.overnight else day
        return self._at(day, self.start), self._at(closing_day, self.end)

    def is_open(self, moment: datetime) -> bool:
        return self.next_open(moment, within_days=2) == moment

    def next_open(self, moment: datetime, *, within_days: int = _LOOKAHEAD_DAYS) -> datetime | None:
        """``moment`` when it is within business hours, else when they next begin (UTC); None if they never
        do within a year (every day closed)."""
        # From the day before: night hours that began yesterday may still be open.
        day = moment.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(within_days + 1):
            candidate = day + timedelta(days=offset)
            if not self.is_business_day(candidate):
                continue
            opens, closes = self.hours_of(candidate)
            if moment < opens:
                return opens
            if moment < closes:
                return moment
        return None

    def day_of(self, moment: datetime) -> date:
        """The (local) day ``moment`` belongs to: its calendar date, except in the hours past midnight that
        night hours begun the day before run into (22:00 to 06:00: Sunday 01:30 is Saturday's), whether or
        not that day is a business day."""
        today = moment.astimezone(self.zone).date()
        if self.overnight:
            yesterday = today - timedelta(days=1)
            opens, closes = self.hours_of(yesterday)
            if opens <= moment < closes:
                return yesterday
        return today

    def next_business_day_start(self, moment: datetime) -> datetime | None:
        """When the first business day after ``moment``'s own day (``day_of``) begins: "next business day"."""
        today = self.day_of(moment)
        for offset in range(1, _LOOKAHEAD_DAYS + 1):
            candidate = today + timedelta(days=offset)
            if self.is_business_day(candidate):
                return self.hours_of(candidate)[0]
        return None
