"""Schedule math: rotations, layers, restrictions, overrides and DST, on pure config objects."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warroom.oncall import schedule as schedule_math
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


# --- "who is on call now": the shift around one instant, without laying out weeks of shifts -------------

CLOCKS = ["00:00", "01:30", "02:30", "03:00", "08:00", "17:00", "20:00", "23:59"]
# Days with a DST change in some of the zones (Lord Howe moves by 30 minutes; Havana at midnight/01:00).
SWITCH_DAYS = [
    date(2025, 3, 9),
    date(2025, 3, 30),
    date(2025, 4, 6),
    date(2025, 10, 5),
    date(2025, 10, 26),
    date(2025, 11, 2),
]

restrictions_st = st.lists(
    st.builds(
        Restriction,
        days=st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True),
        start=st.sampled_from(CLOCKS),
        end=st.sampled_from(CLOCKS),
    ),
    max_size=2,
)
layers_st = st.lists(
    st.builds(
        LayerConfig,
        shift_length=st.sampled_from([timedelta(hours=h) for h in (1, 8, 12, 24, 168)]),
        handoff_time=st.sampled_from(CLOCKS),
        time_zone=st.sampled_from([*ZONES, "America/Havana", "Europe/Dublin"]),
        start=st.dates(date(2024, 12, 1), date(2025, 12, 31)),
        participants=st.lists(st.sampled_from(["ann", "bob", "cid", "dan"]), max_size=3),
        restrictions=restrictions_st,
    ),
    min_size=1,
    max_size=3,
)
instants_st = st.one_of(
    st.builds(
        lambda day, minutes: datetime.combine(day, datetime.min.time(), UTC) + timedelta(minutes=minutes),
        st.sampled_from(SWITCH_DAYS),
        st.integers(-36 * 60, 36 * 60),
    ),
    st.datetimes(datetime(2025, 1, 1), datetime(2026, 6, 30)).map(lambda naive: naive.replace(tzinfo=UTC)),
)


@settings(max_examples=300, deadline=None)
@given(
    layers=layers_st,
    at=instants_st,
    overrides=st.lists(
        st.tuples(st.integers(-30 * 24, 30 * 24), st.integers(1, 60 * 24), st.sampled_from(["ann", "zed"])),
        max_size=3,
    ),
)
def test_on_call_at_is_the_full_computations_shift(
    layers: list[LayerConfig], at: datetime, overrides: list[tuple[int, int, str]]
) -> None:
    """``on_call_at`` walks outwards from the instant only; its shift (person, source, start and end) is the
    one the full computation (``next_shifts`` over a window of weeks, widened as needed) finds, also where
    restrictions start or end in a DST gap or a repeated hour, where layers start later or have nobody,
    and where overrides cover the instant or end next to it."""
    schedule = ScheduleConfig(name="s", layers=layers)
    spans = [
        OverrideSpan(
            person, at + timedelta(hours=offset), at + timedelta(hours=offset + hours), f"override:{n}"
        )
        for n, (offset, hours, person) in enumerate(overrides)
    ]
    assert on_call_at(schedule, at, spans) == next_shifts(schedule, at, 1, spans)[0]


@pytest.mark.parametrize(
    ("zone", "at"),
    [
        ("Europe/Berlin", datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)),  # a second before the jump
        ("Europe/Berlin", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        ("Europe/Berlin", datetime(2026, 10, 25, 0, 30, tzinfo=UTC)),  # the first 02:30
        ("Europe/Berlin", datetime(2026, 10, 25, 1, 30, tzinfo=UTC)),  # the second 02:30
        ("America/New_York", datetime(2026, 3, 8, 7, 15, tzinfo=UTC)),  # 03:15, just after the gap
        ("America/New_York", datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),  # the second 01:30
    ],
)
def test_on_call_at_agrees_around_dst_with_restrictions_in_the_gap(zone: str, at: datetime) -> None:
    people = LayerConfig(
        name="base",
        shift_length="1d",
        handoff_time="02:30",
        time_zone=zone,
        start=date(2026, 1, 1),
        participants=["ann", "bob"],
    )
    nights = LayerConfig(
        name="nights",
        shift_length="12h",
        handoff_time="02:30",
        time_zone=zone,
        start=date(2026, 1, 1),
        participants=["cid", "dan", "eve"],
        restrictions=[Restriction(days=list(range(7)), start="02:30", end="01:30")],
    )
    schedule = ScheduleConfig(name="s", layers=[people, nights])
    for step in range(-6, 7):
        moment = at + timedelta(minutes=10 * step)
        assert on_call_at(schedule, moment, []) == next_shifts(schedule, moment, 1, [])[0], moment


def test_on_call_at_looks_only_at_the_shifts_around_the_instant() -> None:
    """The fast path's cost: "who is on call" for a schedule of one-hour hand-offs turns a handful of
    wall-clock times into UTC, where the full computation lays out nine days (over two hundred)."""
    layer = LayerConfig(
        shift_length="1h",
        time_zone="Europe/Berlin",
        start=date(2026, 1, 1),
        participants=["ann", "bob"],
        restrictions=[Restriction(days=[0, 1, 2, 3, 4], start="08:00", end="20:00")],
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    at = datetime(2026, 3, 11, 10, 20, tzinfo=UTC)
    schedule_math._local_to_utc.cache_clear()
    shift = on_call_at(schedule, at, [])
    fast = schedule_math._local_to_utc.cache_info().currsize
    schedule_math._local_to_utc.cache_clear()
    assert next_shifts(schedule, at, 1, [])[0] == shift
    full = schedule_math._local_to_utc.cache_info().currsize
    assert (shift.person, shift.start, shift.end) == (
        "ann",  # 2026-01-01 09:00 Berlin + 1,658 hours
        at.replace(minute=0),
        at.replace(minute=0) + timedelta(hours=1),
    )
    assert fast <= 20 and full >= 10 * fast, (fast, full)  # 11 and 224 when written


@pytest.mark.parametrize("days_away", [-700, -500, -100, 100, 500, 700])
def test_on_call_at_agrees_with_shifts_longer_than_the_horizon_allows_for(days_away: int) -> None:
    """Year-long shifts: the full computation's look-back and window start beyond the 400-day horizon."""
    at = datetime(2026, 6, 1, 12, tzinfo=UTC)
    layer = LayerConfig(
        shift_length="300d",
        time_zone="UTC",
        start=(at + timedelta(days=days_away)).date(),
        participants=["ann"],
    )
    schedule = ScheduleConfig(name="s", layers=[layer])
    assert on_call_at(schedule, at, []) == next_shifts(schedule, at, 1, [])[0]
