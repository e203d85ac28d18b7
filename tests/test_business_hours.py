"""Business hours: the org's wall clock, weekdays, public holidays (the holidays library) and its own days."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
import yaml
from pydantic import ValidationError

from tests.conftest import EXAMPLE_CONFIG
from warroom.alerts.automation import rule_mismatch
from warroom.alerts.config import AutomationRule
from warroom.business_hours import BusinessHours
from warroom.orgconfig import ConfigError, load_org_config, parse_org_config
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


# A support desk's night shift: 22:00 to 06:00 New York time, shifts beginning Monday to Friday; the shift
# belongs to the day it begins (Friday night runs into Saturday morning; Sunday night has none).
NIGHTS = BusinessHours(time_zone="America/New_York", start="22:00", end="06:00", holiday_country="US")


@pytest.mark.parametrize(
    ("moment", "open_now", "opens"),
    [
        (utc(2026, 12, 2, 4, 0), True, utc(2026, 12, 2, 4, 0)),  # Tuesday 23:00 EST: in Tuesday's shift
        (utc(2026, 12, 2, 10, 0), True, utc(2026, 12, 2, 10, 0)),  # Wednesday 05:00: still Tuesday's
        (utc(2026, 12, 2, 11, 0), False, utc(2026, 12, 3, 3, 0)),  # 06:00: closed until 22:00
        (utc(2026, 12, 5, 10, 59), True, utc(2026, 12, 5, 10, 59)),  # Saturday 05:59: Friday's shift
        (utc(2026, 12, 5, 11, 0), False, utc(2026, 12, 8, 3, 0)),  # Saturday 06:00: Monday 22:00
        (utc(2026, 12, 7, 4, 0), False, utc(2026, 12, 8, 3, 0)),  # Sunday 23:00: no Sunday shift
        # Christmas Day (a Friday) has no shift, and that night is closed; the 24th's shift runs into it.
        (utc(2026, 12, 25, 10, 0), True, utc(2026, 12, 25, 10, 0)),
        (utc(2026, 12, 26, 4, 0), False, utc(2026, 12, 29, 3, 0)),
    ],
)
def test_night_hours_run_past_midnight(moment: datetime, open_now: bool, opens: datetime) -> None:
    assert NIGHTS.is_open(moment) is open_now
    assert NIGHTS.next_open(moment) == opens


def test_round_the_clock_on_business_days() -> None:
    weekdays = BusinessHours(start="00:00", end="00:00")
    assert weekdays.is_open(utc(2026, 12, 4, 23, 59))  # Friday night
    assert not weekdays.is_open(utc(2026, 12, 5, 0, 0))  # Saturday
    assert weekdays.next_open(utc(2026, 12, 5, 12, 0)) == utc(2026, 12, 7, 0, 0)
    # The next business day after a night shift's start begins at that day's start, not at midnight.
    assert NIGHTS.next_business_day_start(utc(2026, 12, 2, 4, 0)) == utc(2026, 12, 3, 3, 0)


def test_a_team_with_its_own_hours_sets_them_for_its_services() -> None:
    org = load_org_config(EXAMPLE_CONFIG)  # payments keeps New York hours, 08:00-17:00, US holidays
    new_york, team = org.business_hours_for(["payments"])
    assert (new_york.time_zone, team) == ("America/New_York", "payments")
    assert org.business_hours_for(["search", "payments"]) == (new_york, "payments")  # the first with its own
    assert org.business_hours_for(["search", None]) == (org.business_hours, None)
    # Friday 18:00 UTC: Berlin is closed until Monday 09:00; New York until Monday 08:00 (its time).
    friday = utc(2026, 11, 27, 18, 0)
    assert response_due_at(org, "P3", friday, ["payments"]) == utc(2026, 11, 30, 13, 0)
    assert response_due_at(org, "P3", friday, ["search"]) == utc(2026, 11, 30, 8, 0)
    # Thanksgiving (26 November 2026) is closed in New York, not in Berlin.
    assert response_due_at(org, "P3", utc(2026, 11, 25, 12, 0), ["payments"]) == utc(2026, 11, 27, 13, 0)
    # A rule for business hours applies by the hours of the alert's service's team.
    rule = AutomationRule(name="by-day", during="business_hours")
    tuesday_morning_in_berlin = utc(2026, 12, 1, 9, 0)  # 04:00 in New York
    assert rule_mismatch(org, rule, tuesday_morning_in_berlin, "search") is None
    assert rule_mismatch(org, rule, tuesday_morning_in_berlin, "payments") == (
        "outside the business hours of team payments now (the rule is for business hours)"
    )


def test_a_teams_bad_hours_are_refused_with_where() -> None:
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["teams"][1]["business_hours"] = {"time_zone": "New York"}
    with pytest.raises(ConfigError) as refused:
        parse_org_config(yaml.safe_dump(data))
    assert "teams[1].business_hours.time_zone" in str(refused.value)
    assert "unknown time zone" in str(refused.value)


# A night shift every day in Berlin: the hours past midnight belong to the shift that began the day before.
EVERY_NIGHT = BusinessHours(
    time_zone="Europe/Berlin", start="22:00", end="06:00", weekdays=[0, 1, 2, 3, 4, 5, 6]
)


@pytest.mark.parametrize(
    ("moment", "day", "next_day_starts"),
    [
        # Sunday 29 March 2026 01:30 CET, in Saturday's shift: the next is Sunday's, 22:00 CEST (summer time
        # began at 02:00 that night).
        (utc(2026, 3, 29, 0, 30), date(2026, 3, 28), utc(2026, 3, 29, 20, 0)),
        # Sunday 05:59 CEST, the last minute of Saturday's shift, and 06:00, after it: Sunday's own day.
        (utc(2026, 3, 29, 3, 59), date(2026, 3, 28), utc(2026, 3, 29, 20, 0)),
        (utc(2026, 3, 29, 4, 0), date(2026, 3, 29), utc(2026, 3, 30, 20, 0)),
        # Sunday 23:00, in Sunday's shift: Monday's.
        (utc(2026, 3, 29, 21, 0), date(2026, 3, 29), utc(2026, 3, 30, 20, 0)),
    ],
)
def test_the_next_business_day_of_night_hours_counts_from_the_shift(
    moment: datetime, day: date, next_day_starts: datetime
) -> None:
    assert EVERY_NIGHT.day_of(moment) == day
    assert EVERY_NIGHT.next_business_day_start(moment) == next_day_starts
    # Day hours keep the calendar date, the small hours too.
    assert BERLIN.day_of(utc(2026, 12, 2, 0, 30)) == date(2026, 12, 2)


def test_a_p3_opened_after_midnight_in_a_night_shift_is_due_at_the_next_shift() -> None:
    org = load_org_config(EXAMPLE_CONFIG)
    nights = org.model_copy(update={"business_hours": EVERY_NIGHT})
    assert response_due_at(nights, "P3", utc(2026, 3, 29, 0, 30)) == utc(2026, 3, 29, 20, 0)
