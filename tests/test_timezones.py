"""Time zones in the org file: regions (IANA names) and UTC, not abbreviations or the machine's own zone."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from warroom.orgconfig import ConfigError, parse_org_config
from warroom.timezones import check_zone

SCHEDULE = {
    "name": "nightly",
    "rrule": "FREQ=DAILY;BYHOUR=2",
    "duration": "1h",
    "reason": "nightly job",
    "services": ["database"],
}


@pytest.mark.parametrize(
    ("zone", "said"),
    [
        (
            "EST",
            "EST is a fixed UTC\u22125 offset with no summer time: write a region such as America/New_York",
        ),
        (
            "MST",
            "MST is a fixed UTC\u22127 offset with no summer time: write a region such as America/Denver",
        ),
        (
            "HST",
            "HST is a fixed UTC\u221210 offset with no summer time: write a region such as Pacific/Honolulu",
        ),
        ("EST5EDT", "EST5EDT is an old abbreviation, not a region"),
        ("CET", "write a region such as Europe/Berlin"),
        ("MET", "write a region such as Europe/Berlin"),
        ("EET", "write a region such as Europe/Athens"),
        ("WET", "write a region such as Europe/Lisbon"),
        ("localtime", "localtime depends on the machine that reads the file"),
        ("UTC+2", "unknown time zone 'UTC+2'"),
        ("+02:00", "unknown time zone '+02:00'"),
    ],
)
def test_abbreviations_and_the_machines_zone_are_refused(zone: str, said: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_zone(zone)
    assert said in str(caught.value)


@pytest.mark.parametrize(
    "zone", ["UTC", "Etc/UTC", "GMT", "Europe/Berlin", "America/New_York", "Asia/Kolkata"]
)
def test_regions_and_utc_are_taken(zone: str) -> None:
    assert check_zone(zone) == zone


@pytest.mark.parametrize("where", ["maintenance_schedules", "business_hours"])
def test_the_org_file_refuses_an_abbreviation(where: str) -> None:
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    if where == "maintenance_schedules":
        data["automation"]["maintenance_schedules"] = [{**SCHEDULE, "time_zone": "EST"}]
    else:
        data["business_hours"]["time_zone"] = "EST"
    with pytest.raises(ConfigError) as caught:
        parse_org_config(yaml.safe_dump(data), "org.yaml")
    assert any("EST is a fixed UTC\u22125 offset" in str(line) for line in caught.value.problems), (
        caught.value.problems
    )


@pytest.mark.parametrize(
    ("zone", "meant"),
    [
        ("America/NewYork", "America/New_York"),
        ("America/New York", "America/New_York"),
        ("europe/berlin", "Europe/Berlin"),
        ("Europe/Berlni", "Europe/Berlin"),
        ("Berlin", "Europe/Berlin"),
        ("utc", "UTC"),
    ],
)
def test_a_misspelt_zone_names_the_region_meant(zone: str, meant: str) -> None:
    """A typo in a zone got no suggestion, where a misspelt service name gets one."""
    with pytest.raises(ValueError) as caught:
        check_zone(zone)
    assert str(caught.value) == f"unknown time zone {zone!r}; did you mean {meant!r}?"


def test_an_abbreviation_in_the_wrong_case_is_named_with_the_region_meant() -> None:
    """Names were compared case and all: est5edt got no suggestion."""
    with pytest.raises(ValueError) as caught:
        check_zone("est5edt")
    assert str(caught.value) == (
        "unknown time zone 'est5edt'; did you mean 'EST5EDT'? That is an old abbreviation, not a region: "
        "write a region such as America/New_York"
    )


def test_a_zone_typo_in_the_org_file_is_said_with_the_region_meant() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_org_config("people:\n  - {name: ann, time_zone: America/NewYork}\n")
    assert [str(problem) for problem in caught.value.problems] == [
        "people[0].time_zone (line 2): unknown time zone 'America/NewYork'; did you mean 'America/New_York'?"
    ]
    # An offset is no misspelt region: no guess.
    with pytest.raises(
        ValueError, match=r"^unknown time zone 'UTC\+2'; use an IANA name like Europe/Berlin$"
    ):
        check_zone("UTC+2")
