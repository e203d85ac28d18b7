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
