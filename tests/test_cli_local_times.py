"""A time the CLI is given without an offset is this machine's wall clock: one the clock skips is refused,
one it shows twice is the first (as the server reads a maintenance schedule's)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import typer

from tests.conftest import machine_zone
from warroom.cli.output import instant


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with machine_zone(monkeypatch, "America/New_York"):
        yield


@pytest.mark.parametrize("moment", ["2027-03-14T02:00", "2027-03-14T02:30", "2027-03-14T02:59:59"])
def test_a_time_the_clock_skips_is_refused(new_york: None, moment: str) -> None:
    with pytest.raises(typer.BadParameter) as caught:
        instant(moment, "--until")
    assert (
        f"{moment[:10]} {moment[11:16]} does not exist in America/New_York (clocks go forward): give an "
        in (caught.value.message)
    )


def test_a_time_the_clock_shows_twice_is_the_first(new_york: None) -> None:
    assert instant("2027-11-07T01:30", "--until") == "2027-11-07T01:30:00-04:00"  # EDT, before falling back
    assert instant("2027-11-07T01:30-05:00", "--until") == "2027-11-07T01:30:00-05:00"  # the second, if said


def test_other_times_are_the_local_wall_clock(new_york: None) -> None:
    assert instant("2027-03-14T01:59", "--until") == "2027-03-14T01:59:00-05:00"
    assert instant("2027-03-14T03:00", "--until") == "2027-03-14T03:00:00-04:00"
    assert instant("2027-03-14T02:30:00+00:00", "--until") == "2027-03-14T02:30:00+00:00"
    assert instant(None, "--until") is None
