"""Schedule math: rotations, layers, restrictions, overrides and DST, on pure config objects."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.oncall.config import LayerConfig, OverrideConfig, Restriction, ScheduleConfig
from warroom.oncall.schedule import (
    OverrideSpan,
    config_overrides,
    next_shifts,
    on_call_at,
    person_at,
    shifts_between,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def daily(zone: str, start: date, people: list[str], handoff: str = "09:00") -> ScheduleConfig:
    layer = LayerConfig(
        name="primary",
        shift_length=timedelta(days=1),
        handoff_time=handoff,
        time_zone=zone,
        start=start,
        participants=people,
    )
    return ScheduleConfig(name="s", layers=[layer])


def test_weekly_rotation_cycles_through_participants() -> None:
    layer = LayerConfig(
        shift_length="1w", time_zone="UTC", start=date(2026, 1, 5), participants=["ann", "bob", "cid"]
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    start = datetime(2026, 1, 5, 9, tzinfo=UTC)
    assert person_at(schedule, start - timedelta(seconds=1), []) is None  # before the layer starts
    assert person_at(schedule, start, []) == "ann"
    assert person_at(schedule, start + timedelta(days=7), []) == "bob"
    assert person_at(schedule, start + timedelta(days=14, hours=5), []) == "cid"
    assert person_at(schedule, start + timedelta(days=21), []) == "ann"
    shifts = next_shifts(schedule, start + timedelta(days=1), 4, [])
    assert [s.person for s in shifts] == ["ann", "bob", "cid", "ann"]
    assert shifts[0].start == start and shifts[0].end == start + timedelta(days=7)
    assert all(s.duration == timedelta(days=7) for s in shifts)


@pytest.mark.parametrize(
    ("zone", "switch_day", "short_or_long"),
    [
        ("Europe/Berlin", date(2026, 3, 29), timedelta(hours=23)),  # spring forward
        ("Europe/Berlin", date(2026, 10, 25), timedelta(hours=25)),  # fall back
        ("America/New_York", date(2026, 3, 8), timedelta(hours=23)),
        ("America/New_York", date(2026, 11, 1), timedelta(hours=25)),
    ],
)
def test_daily_handoff_stays_at_local_time_across_dst(
    zone: str, switch_day: date, short_or_long: timedelta
) -> None:
    schedule = daily(zone, switch_day - timedelta(days=10), ["ann", "bob"])
    local_zone = ZoneInfo(zone)
    around = datetime.combine(switch_day - timedelta(days=2), datetime.min.time(), local_zone)
    shifts = next_shifts(schedule, around, 5, [])
    for shift in shifts:
        local_start = shift.start.astimezone(local_zone)
        assert (local_start.hour, local_start.minute) == (9, 0), shift
    durations = {s.start.astimezone(local_zone).date(): s.duration for s in shifts}
    # The shift that starts the day before the switch (09:00) spans the change.
    assert durations[switch_day - timedelta(days=1)] == short_or_long
    for day, duration in durations.items():
        if day != switch_day - timedelta(days=1):
            assert duration == timedelta(hours=24), day
    # Rotation order is unaffected.
    assert [s.person for s in shifts] == [["ann", "bob"][i % 2] for i in range(7, 12)]


def test_twelve_hour_shifts_across_dst_follow_wall_clock() -> None:
    layer = LayerConfig(
        shift_length="12h",
        handoff_time="08:00",
        time_zone="Europe/Berlin",
        start=date(2026, 3, 27),
        participants=["day", "night"],
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    shifts = next_shifts(schedule, datetime(2026, 3, 28, 12, tzinfo=BERLIN), 4, [])
    local = [(s.start.astimezone(BERLIN).strftime("%d %H:%M"), s.duration) for s in shifts]
    assert local == [
        ("28 08:00", timedelta(hours=12)),
        ("28 20:00", timedelta(hours=11)),  # the night the clocks jump forward
        ("29 08:00", timedelta(hours=12)),
        ("29 20:00", timedelta(hours=12)),
    ]


def test_later_layers_override_earlier_where_they_have_someone() -> None:
    base = LayerConfig(
        name="weekly", shift_length="1w", time_zone="UTC", start=date(2026, 1, 5), participants=["ann", "bob"]
    )
    office_hours = LayerConfig(
        name="office",
        shift_length="1d",
        time_zone="Europe/Berlin",
        start=date(2026, 1, 5),
        participants=["cid"],
        restrictions=[Restriction(days=[0, 1, 2, 3, 4], start="09:00", end="17:00")],
    )
    schedule = ScheduleConfig(name="s", layers=[base, office_hours])
    monday_noon = datetime(2026, 1, 12, 12, tzinfo=BERLIN)
    assert person_at(schedule, monday_noon, []) == "cid"
    assert person_at(schedule, monday_noon.replace(hour=18), []) == "bob"
    assert person_at(schedule, datetime(2026, 1, 17, 12, tzinfo=BERLIN), []) == "bob"  # Saturday
    day = shifts_between(
        schedule, datetime(2026, 1, 12, 10, tzinfo=UTC), datetime(2026, 1, 13, 10, tzinfo=UTC), []
    )
    assert [(s.person, s.source) for s in day] == [
        ("cid", "layer:office"),
        ("bob", "layer:weekly"),
        ("cid", "layer:office"),
    ]
    assert day[0].end == datetime(2026, 1, 12, 16, tzinfo=UTC)  # 17:00 Berlin in winter


def test_overnight_restriction() -> None:
    layer = LayerConfig(
        shift_length="1d",
        time_zone="UTC",
        start=date(2026, 1, 1),
        participants=["owl"],
        restrictions=[Restriction(days=[4], start="22:00", end="06:00")],  # Friday night
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    assert person_at(schedule, datetime(2026, 1, 9, 23, tzinfo=UTC), []) == "owl"  # Friday 23:00
    assert person_at(schedule, datetime(2026, 1, 10, 5, tzinfo=UTC), []) == "owl"  # Saturday 05:00
    assert person_at(schedule, datetime(2026, 1, 10, 7, tzinfo=UTC), []) is None
    assert person_at(schedule, datetime(2026, 1, 8, 23, tzinfo=UTC), []) is None  # Thursday


def test_overrides_win_and_newest_runtime_override_wins() -> None:
    schedule = daily("UTC", date(2026, 1, 1), ["ann", "bob"])
    schedule.overrides.append(
        OverrideConfig(
            person="zed",
            start=datetime(2026, 1, 10, 12, tzinfo=UTC),
            end=datetime(2026, 1, 10, 18, tzinfo=UTC),
        )
    )
    runtime = [
        OverrideSpan(
            "yan", datetime(2026, 1, 10, 15, tzinfo=UTC), datetime(2026, 1, 10, 20, tzinfo=UTC), "override:1"
        ),
    ]
    overrides = [*config_overrides(schedule), *runtime]
    assert person_at(schedule, datetime(2026, 1, 10, 13, tzinfo=UTC), overrides) == "zed"
    assert person_at(schedule, datetime(2026, 1, 10, 16, tzinfo=UTC), overrides) == "yan"
    assert (
        person_at(schedule, datetime(2026, 1, 10, 21, tzinfo=UTC), overrides) == "bob"
    )  # 10 January is shift 9
    shift = on_call_at(schedule, datetime(2026, 1, 10, 16, tzinfo=UTC), overrides)
    assert (shift.person, shift.source, shift.override_id) == ("yan", "override", 1)
    assert shift.start == datetime(2026, 1, 10, 15, tzinfo=UTC)
    assert shift.end == datetime(2026, 1, 10, 20, tzinfo=UTC)
    window = shifts_between(
        schedule, datetime(2026, 1, 10, 9, tzinfo=UTC), datetime(2026, 1, 11, 9, tzinfo=UTC), overrides
    )
    assert [s.person for s in window] == ["bob", "zed", "yan", "bob"]


def test_a_long_override_in_progress_reports_its_real_start() -> None:
    """A two-month cover started a month ago: "who is on call" said it began two days ago (the look-back)."""
    schedule = daily("America/New_York", date(2026, 1, 1), ["erin", "frank"])
    cover = OverrideSpan(
        "frank", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 31, tzinfo=UTC), "override:7"
    )
    shift = on_call_at(schedule, datetime(2026, 12, 4, 5, 18, tzinfo=UTC), [cover])
    assert (shift.person, shift.start, shift.end) == ("frank", cover.start, cover.end)
    [first, second] = next_shifts(schedule, datetime(2026, 12, 4, tzinfo=UTC), 2, [cover])
    assert (first.start, second.start, second.source) == (cover.start, cover.end, "layer:primary")


def test_gap_when_no_layer_has_anyone() -> None:
    layer = LayerConfig(
        shift_length="1d",
        time_zone="UTC",
        start=date(2026, 1, 1),
        participants=["ann"],
        restrictions=[Restriction(days=[0, 1, 2, 3, 4, 5, 6], start="09:00", end="17:00")],
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    shifts = next_shifts(schedule, datetime(2026, 1, 5, 10, tzinfo=UTC), 3, [])
    assert [(s.person, s.start.hour, s.end.hour) for s in shifts] == [
        ("ann", 9, 17),
        (None, 17, 9),
        ("ann", 9, 17),
    ]


ZONES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "UTC",
]


@settings(max_examples=60, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    hours=st.sampled_from([8, 12, 24, 48, 168]),
    handoff=st.sampled_from(["00:00", "02:30", "09:00", "23:00"]),
    people=st.integers(min_value=1, max_value=4),
    day_offset=st.integers(min_value=0, max_value=700),
)
def test_shifts_tile_time_and_agree_with_who(
    zone: str, hours: int, handoff: str, people: int, day_offset: int
) -> None:
    layer = LayerConfig(
        shift_length=timedelta(hours=hours),
        handoff_time=handoff,
        time_zone=zone,
        start=date(2025, 1, 1),
        participants=[f"p{n}" for n in range(people)],
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    after = datetime(2025, 1, 10, tzinfo=UTC) + timedelta(days=day_offset, hours=day_offset % 24)
    shifts = next_shifts(schedule, after, 6, [])
    assert len(shifts) == 6
    assert shifts[0].start <= after < shifts[0].end
    for shift, following in itertools.pairwise(shifts):
        assert shift.end == following.start  # no gaps, no overlaps
    for shift in shifts:
        assert shift.person is not None
        assert person_at(schedule, shift.start, []) == shift.person
        assert person_at(schedule, shift.end - timedelta(seconds=1), []) == shift.person
        if hours % 24 == 0:
            local = shift.start.astimezone(ZoneInfo(zone))
            wanted = tuple(int(part) for part in handoff.split(":"))
            # At the hand-off time, or just after it when that time does not exist that day (DST gap).
            assert (local.hour, local.minute) == wanted or shift.duration != timedelta(hours=hours)
