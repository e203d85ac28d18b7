"""Business hours: the org's wall clock, weekdays, public holidays (the holidays library) and its own days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from pydantic import ValidationError

from tests.conftest import EXAMPLE_CONFIG
from warroom.business_hours import BusinessHours
from warroom.orgconfig import load_org_config
from warroom.severity.service import response_due_at

# Europe/Berlin, 09:00-18:00 Monday to Friday, Berlin's public holidays, and 24 and 31 December closed.
BERLIN = load_org_config(EXAMPLE_CONFIG).business_hours


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("moment", "open_now", "opens"),
    [
        (utc(2026, 12, 2, 10, 0), True, utc(2026, 12, 2, 10, 0)),  # Wednesday 11:00 CET: open
        (utc(2026, 12, 2, 7, 59), False, utc(2026, 12, 2, 8, 0)),  # 08:59: opens at 09:00 CET
        (utc(2026, 12, 2, 17, 0), False, utc(2026, 12, 3, 8, 0)),  # 18:00: closed until tomorrow
        (utc(2026, 12, 4, 20, 0), False, utc(2026, 12, 7, 8, 0)),  # Friday night: Monday morning
        # Christmas: the 24th (the org's own), 25th and 26th (public), then a weekend.
        (utc(2026, 12, 23, 18, 0), False, utc(2026, 12, 28, 8, 0)),
        # New Year: the 31st (the org's own) and 1 January (public).
        (utc(2026, 12, 30, 17, 30), False, utc(2027, 1, 4, 8, 0)),
        # Summer time: 09:00 CEST is 07:00 UTC.
        (utc(2026, 6, 6, 12, 0), False, utc(2026, 6, 8, 7, 0)),
        # 8 March (International Women's Day) is a public holiday in Berlin only.
        (utc(2027, 3, 8, 10, 0), False, utc(2027, 3, 9, 8, 0)),
    ],
)
def test_when_business_hours_are_open_and_next_begin(
    moment: datetime, open_now: bool, opens: datetime
) -> None:
    assert BERLIN.is_open(moment) is open_now
    assert BERLIN.next_open(moment) == opens


def test_holidays_by_name_and_by_subdivision() -> None:
    assert BERLIN.holiday_name(date(2026, 12, 25)) is not None
    assert BERLIN.holiday_name(date(2026, 12, 24)) == "closed"
    assert BERLIN.holiday_name(date(2026, 12, 2)) is None
    bavaria = BusinessHours(time_zone="Europe/Berlin", holiday_country="DE", holiday_subdivision="BY")
    assert bavaria.is_business_day(date(2027, 3, 8))  # not a holiday in Bavaria
    assert not bavaria.is_business_day(date(2026, 1, 6))  # Epiphany is


def test_next_business_day_skips_weekends_and_holidays() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    assert response_due_at(org, "P3", utc(2026, 11, 27, 18, 0)) == utc(2026, 11, 30, 8, 0)  # Fri -> Mon
    assert response_due_at(org, "P3", utc(2026, 12, 23, 10, 0)) == utc(2026, 12, 28, 8, 0)  # over Christmas


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": "18:00", "end": "09:00"}, "must be after start"),
        ({"start": "9:00"}, "should match pattern"),
        ({"end": "24:00"}, "should match pattern"),
        ({"weekdays": [7]}, "0 (Monday) to 6 (Sunday)"),
        ({"weekdays": []}, "at least 1"),
        ({"time_zone": "Berlin"}, "unknown time zone"),
        ({"holiday_country": "XX"}, "holidays"),
        ({"holiday_country": "DE", "holiday_subdivision": "ZZ"}, "holidays"),
        ({"holiday_subdivision": "BE"}, "needs holiday_country"),
    ],
)
def test_bad_business_hours_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        BusinessHours.model_validate(fields)
    assert message in str(refused.value)


def test_every_day_closed_never_opens() -> None:
    hours = BusinessHours(weekdays=[0], holidays=[])
    mondays_closed = hours.model_copy(update={"holidays": [date(2026, 1, 5)]})
    assert mondays_closed.next_open(utc(2026, 1, 5, 10, 0)) == utc(2026, 1, 12, 9, 0)
