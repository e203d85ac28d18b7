"""Durations as people write them (org file, ``--grace``, API bodies), and what a bad one is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter, ValidationError

from warroom.durations import Duration, RequestDuration, format_duration

DURATION: TypeAdapter[timedelta] = TypeAdapter(Duration)


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("90", timedelta(seconds=90)),
        (90, timedelta(seconds=90)),
        ("PT5M", timedelta(minutes=5)),
        ("01:30:00", timedelta(hours=1, minutes=30)),
        ("1 day, 02:00:00", timedelta(days=1, hours=2)),
    ],
)
def test_accepted_forms(written: object, meant: timedelta) -> None:
    assert DURATION.validate_python(written) == meant


# "²" and "٣" count as digits to str.isdigit(); "²" is not one to int().
@pytest.mark.parametrize("written", ["soon", "", "5 minutes", "-5m", "1h and a bit", "²", "٣"])
def test_a_bad_duration_says_how_to_write_one(written: str) -> None:
    with pytest.raises(ValidationError) as error:
        DURATION.validate_python(written)
    message = error.value.errors()[0]["msg"]
    assert "is not a duration" in message and "1h30m" in message


@pytest.mark.parametrize("written", ["09:00", "23:30", "1:30", "2026-12-06", "2026-12-06T10:00Z"])
def test_a_time_or_a_date_is_not_taken_for_a_duration(written: str) -> None:
    """`--since 09:00` read as 9 hours (pydantic's HH:MM), `--since 2026-12-06T10:00Z` said durations may not
    exceed 999,999,999 hours."""
    with pytest.raises(ValidationError) as error:
        DURATION.validate_python(written)
    assert "is a time or a date, not a duration" in error.value.errors()[0]["msg"]


def test_format_round_trips() -> None:
    for value in (timedelta(0), timedelta(seconds=59), timedelta(days=1, hours=2, minutes=3, seconds=4)):
        assert DURATION.validate_python(format_duration(value)) == value


@pytest.mark.parametrize(
    "written", ["99999999999999999999d", "99999999999999999999", "36501d", "P999999999D"]
)
def test_a_duration_past_a_hundred_years_is_refused_not_overflowed(written: str) -> None:
    """Such a duration made timedelta (or a date plus it) overflow: a 500 from the API, a CLI traceback."""
    with pytest.raises(ValidationError) as error:
        DURATION.validate_python(written)
    assert "is too long a duration (at most 36500d)" in error.value.errors()[0]["msg"]
    assert DURATION.validate_python("36500d") == timedelta(days=36500)


def test_the_api_refuses_overlong_durations(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    huge = "99999999999999999999d"
    asked = [
        api.get("/api/v1/alerts/noise", params={"since": huge}, headers=viewer),
        api.get("/api/v1/alerts", params={"since": huge}, headers=viewer),
        api.post("/api/v1/alerts/ALR-1/snooze", json={"duration": huge}, headers=admin),
        api.post(
            "/api/v1/maintenance", json={"services": ["api"], "duration": huge, "reason": "x"}, headers=admin
        ),
        api.post("/api/v1/maintenance/MW-1/extend", json={"by": huge}, headers=admin),
        api.post("/api/v1/integrations/1/rotate", json={"grace": huge}, headers=admin),
    ]
    assert [answer.status_code for answer in asked] == [422] * len(asked), [a.text for a in asked]


def test_a_request_duration_needs_its_unit_where_the_org_file_reads_seconds() -> None:
    assert TypeAdapter(Duration).validate_python(300) == timedelta(minutes=5)
    assert TypeAdapter(Duration).validate_python("300") == timedelta(minutes=5)
    request = TypeAdapter(RequestDuration)
    for given, written in [(30, "30"), ("30", "30"), (" 0 ", "0"), (2.5, "2.5")]:
        with pytest.raises(ValidationError, match=f"{written} has no unit: write {written}s, {written}m"):
            request.validate_python(given)
    assert request.validate_python("1h30m") == timedelta(minutes=90)
    assert request.validate_python("0s") == timedelta(0)
    assert request.validate_python("PT2H") == timedelta(hours=2)
    with pytest.raises(ValidationError, match="is not a duration"):
        request.validate_python("soon")


def test_the_api_refuses_a_duration_without_its_unit(
    api: TestClient, admin: dict[str, str], viewer: dict[str, str]
) -> None:
    asked = [
        api.get("/api/v1/alerts/noise", params={"since": "24"}, headers=viewer),
        api.get("/api/v1/alerts", params={"since": "2"}, headers=viewer),
        api.get("/api/v1/changes", params={"since": "2"}, headers=viewer),
        api.post(
            "/api/v1/maintenance", json={"services": ["api"], "duration": 60, "reason": "x"}, headers=admin
        ),
        api.post("/api/v1/maintenance/MW-1/extend", json={"by": "30"}, headers=admin),
        api.post("/api/v1/integrations/1/rotate", json={"grace": 3600}, headers=admin),
    ]
    assert [answer.status_code for answer in asked] == [422] * len(asked), [a.text for a in asked]
    assert all("has no unit" in answer.text for answer in asked), [a.text for a in asked]
