"""Durations as people write them (org file, ``--grace``, API bodies), and what a bad one is told."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter, ValidationError

from warroom.durations import Duration, format_duration

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


def test_format_round_trips() -> None:
    for value in (timedelta(0), timedelta(seconds=59), timedelta(days=1, hours=2, minutes=3, seconds=4)):
        assert DURATION.validate_python(format_duration(value)) == value
