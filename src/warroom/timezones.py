"""Time zones as people write them in the org file: IANA names such as Europe/Berlin."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator

from warroom.fields import closest

# Names the time zone database keeps for old systems, which people take for regions: EST is a fixed UTC-5
# all year (New York is EDT, UTC-4, in summer), CET follows rules that need not be a given country's. Each
# with the region people usually mean.
_LEGACY_ZONES = {
    "EST": "America/New_York",
    "MST": "America/Denver (or America/Phoenix, which keeps no summer time)",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
    "CET": "Europe/Berlin",
    "MET": "Europe/Berlin",
    "EET": "Europe/Athens",
    "WET": "Europe/Lisbon",
}
# The machine's own zone, under a name that means another zone on every machine that reads the file.
_MACHINE_ZONES = {"localtime", "posixrules", "Factory"}


def _utc_offset(offset: timedelta) -> str:
    sign = "+" if offset >= timedelta(0) else "\u2212"
    hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
    return f"UTC{sign}{hours}" + (f":{minutes:02}" if minutes else "")


def check_zone(value: str) -> str:
    """The name, if the system's time zone database knows it as a region (or UTC); ValueError saying how to
    write one."""
    if value in _MACHINE_ZONES:
        raise ValueError(
            f"{value} depends on the machine that reads the file: write a region such as Europe/Berlin"
        )
    try:
        zone = ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        nearest = nearest_zone(value)
        if nearest is not None:
            raise ValueError(f"unknown time zone {value!r}; did you mean {nearest!r}?") from None
        legacy = closest(value, _LEGACY_ZONES)  # est5edt: EST5EDT, which is no region either
        if legacy is not None:
            raise ValueError(
                f"unknown time zone {value!r}; did you mean {legacy!r}? That is an old abbreviation, not a "
                f"region: write a region such as {_LEGACY_ZONES[legacy]}"
            ) from None
        raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin") from None
    region = _LEGACY_ZONES.get(value.upper())
    if region is not None:
        winter = zone.utcoffset(datetime(2026, 1, 15))
        summer = zone.utcoffset(datetime(2026, 7, 15))
        if winter is not None and winter == summer:
            raise ValueError(
                f"{value} is a fixed {_utc_offset(winter)} offset with no summer time: write a region "
                f"such as {region}"
            )
        raise ValueError(
            f"{value} is an old abbreviation, not a region (its summer time need not be yours): write a "
            f"region such as {region}"
        )
    return value


def nearest_zone(value: str) -> str | None:
    """The region a misspelt zone most likely means (America/NewYork, America/New York, europe/berlin: case
    and spaces aside, as ``closest`` finds a name in the org file), or one with that city (Berlin); None for
    an offset (UTC+2: no region is meant) or nothing close."""
    if any(c.isdigit() for c in value):
        return None
    regions = _regions()
    written = _normalized(value)
    if written in regions:
        return regions[written]
    nearest = closest(written, regions)
    if nearest is None and "/" not in written:
        cities = {key.rsplit("/", 1)[-1]: key for key in regions if "/" in key}
        nearest = cities.get(written) or cities.get(closest(written, cities) or "")
    return regions[nearest] if nearest is not None else None


def _normalized(name: str) -> str:
    return "_".join(name.strip().split()).lower()


@cache
def _regions() -> dict[str, str]:
    """The regions of the time zone database (and UTC) by their normalized names; not the abbreviations, the
    machine's own zones, or the posix/ and right/ copies."""
    names = [
        name
        for name in sorted(available_timezones())
        if ("/" in name and not name.startswith(("posix/", "right/", "Etc/", "SystemV/"))) or name == "UTC"
    ]
    return {_normalized(name): name for name in names}


def _with_offset(value: datetime) -> datetime:
    # A time without an offset means something else on every machine that reads it.
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 2026-12-24T09:00:00+01:00 or ...Z")
    return value


# A moment given in an API body: ISO 8601 with its UTC offset.
OffsetDatetime = Annotated[datetime, AfterValidator(_with_offset)]
