"""Schedule math: who is on call at an instant, and the shifts over a window. Pure functions, no I/O.

Shift boundaries are computed on the layer's local wall clock (start date + k * shift length at the
hand-off time) and only then turned into UTC, so a daily 09:00 hand-off stays at 09:00 local across
DST changes and the shift around the change is 23 or 25 hours long. A hand-off that falls into a
DST gap moves forward to the first existing local time (dateutil's ``resolve_imaginary``); in a
repeated hour the first occurrence (fold=0) is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dateutil import tz as dateutil_tz

from warroom.oncall.config import LayerConfig, Restriction, ScheduleConfig, parse_clock

MAX_HORIZON = timedelta(days=400)


@dataclass(frozen=True)
class OverrideSpan:
    person: str
    start: datetime
    end: datetime
    source: str  # "config" or "override:<id>"


@dataclass(frozen=True)
class Shift:
    schedule: str
    person: str | None
    start: datetime
    end: datetime
    source: str  # "layer:<name>", "override", or "none"
    layer: str | None = None
    override_id: int | None = None

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


@dataclass(frozen=True)
class _Who:
    person: str | None
    source: str
    layer: str | None
    shift_index: int | None
    override: str | None

    @property
    def identity(self) -> tuple[object, ...]:
        return (self.person, self.source, self.layer, self.shift_index, self.override)


def layer_label(layer: LayerConfig, index: int) -> str:
    return layer.name or f"layer-{index + 1}"


# zoneinfo keeps only its 8 latest zones for sure: an org file with more would read zone files from disk again
# and again. Keep every zone a schedule uses.
_zone = lru_cache(maxsize=1024)(ZoneInfo)


def _to_utc(local_naive: datetime, zone: ZoneInfo) -> datetime:
    return _local_to_utc(local_naive, zone.key)


# Every hand-off and restriction edge is a wall-clock time turned into UTC, again and again for the same few
# days (each "who is on call" looks at the shifts around now): remember them. Keys are naive local times
# (fold 0, as everything here builds them) and zone names, so a reloaded org file shares the entries.
@lru_cache(maxsize=32768)
def _local_to_utc(local_naive: datetime, zone_key: str) -> datetime:
    zone = _zone(zone_key)
    aware = local_naive.replace(tzinfo=zone)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) == local_naive:
        return utc  # the local time exists (in a repeated hour: its first occurrence)
    # A DST gap: move forward by the gap, as dateutil's resolve_imaginary does (the only costly case).
    return dateutil_tz.resolve_imaginary(aware).astimezone(UTC)


_clock = lru_cache(maxsize=1024)(parse_clock)


@lru_cache(maxsize=4096)
def _base_at(start: date, handoff_time: str) -> datetime:
    return datetime.combine(start, _clock(handoff_time))


def _base(layer: LayerConfig) -> datetime:
    return _base_at(layer.start, layer.handoff_time)


def layer_boundary(layer: LayerConfig, index: int) -> datetime:
    """When shift ``index`` of the layer starts (UTC); shift 0 starts on the start date at hand-off."""
    return _local_to_utc(_base(layer) + index * layer.shift_length, layer.time_zone)


def layer_shift_index(layer: LayerConfig, at: datetime) -> int:
    """The shift index covering ``at`` (negative before the layer starts)."""
    zone = _zone(layer.time_zone)
    local_naive = at.astimezone(zone).replace(tzinfo=None)
    index = (local_naive - _base(layer)) // layer.shift_length
    # The wall-clock estimate can be one off around a DST change; settle it on real instants.
    while layer_boundary(layer, index) > at:
        index -= 1
    while layer_boundary(layer, index + 1) <= at:
        index += 1
    return index


def _restricted_in(restrictions: list[Restriction], local: datetime) -> bool:
    if not restrictions:
        return True
    now = local.time()
    weekday = local.weekday()
    for restriction in restrictions:
        start, end = _clock(restriction.start), _clock(restriction.end)
        if start < end:
            if weekday in restriction.days and start <= now < end:
                return True
        else:  # overnight (or all day when start == end): starts on a listed day
            if weekday in restriction.days and now >= start:
                return True
            if (weekday - 1) % 7 in restriction.days and now < end:
                return True
    return False


def layer_person_at(layer: LayerConfig, at: datetime) -> tuple[str | None, int | None]:
    if not layer.participants:
        return None, None
    index = layer_shift_index(layer, at)
    if index < 0:
        return None, None
    if not _restricted_in(layer.restrictions, at.astimezone(_zone(layer.time_zone))):
        return None, None
    return layer.participants[index % len(layer.participants)], index


def _who(schedule: ScheduleConfig, at: datetime, overrides: list[OverrideSpan]) -> _Who:
    # Overrides win; among them the last one given (runtime after config, newer after older).
    for override in reversed(overrides):
        if override.start <= at < override.end:
            return _Who(override.person, "override", None, None, override.source)
    for index in range(len(schedule.layers) - 1, -1, -1):
        layer = schedule.layers[index]
        person, shift_index = layer_person_at(layer, at)
        if person is not None:
            return _Who(person, "layer", layer_label(layer, index), shift_index, None)
    return _Who(None, "none", None, None, None)


def person_at(schedule: ScheduleConfig, at: datetime, overrides: list[OverrideSpan]) -> str | None:
    """Who is on call at ``at`` (None in a gap)."""
    return _who(schedule, at.astimezone(UTC), overrides).person


def config_overrides(schedule: ScheduleConfig) -> list[OverrideSpan]:
    return [
        OverrideSpan(o.person, o.start.astimezone(UTC), o.end.astimezone(UTC), "config")
        for o in schedule.overrides
    ]


def on_call_at(schedule: ScheduleConfig, at: datetime, overrides: list[OverrideSpan]) -> Shift:
    """The shift covering ``at``, with its real start and end (as far as the look-back/horizon reach).

    The same answer as ``next_shifts(schedule, at, 1, overrides)[0]`` (tests compare the two), found by
    walking the schedule's change points outwards from ``at`` only until the person changes on either
    side, instead of laying out every shift of a window of weeks around it."""
    at = at.astimezone(UTC)
    lookback = _lookback(schedule)
    window_end = at + max(lookback, timedelta(days=7), MAX_HORIZON)  # where next_shifts stops widening
    earlier = _points_down(schedule, at, at - max(lookback, MAX_HORIZON), overrides)
    # next_shifts' shift starts at the last change point before ``at`` where the person changes, or at the
    # edge of its look-back window (which it widens while the shift reaches it, up to the horizon); the
    # window's edge is a point of its own, whose answer counts as much as a change point's.
    who: _Who | None = None
    start = at
    pending = next(earlier, None)
    while True:
        edge = at - lookback
        while pending is not None and pending > edge:
            seen = _who(schedule, pending, overrides)
            if who is None:
                who = seen
            elif seen.identity != who.identity:
                break
            start = pending
            pending = next(earlier, None)
        else:
            at_edge = _who(schedule, edge, overrides)
            if who is not None and at_edge.identity != who.identity:
                break  # the shift began at ``start``, after the window's edge
            if lookback < MAX_HORIZON:
                lookback = min(lookback * 2, MAX_HORIZON)
                continue
            who, start = (at_edge if who is None else who), edge
        break
    assert who is not None
    end = window_end
    for point in _points_up(schedule, at, window_end, overrides):
        if _who(schedule, point, overrides).identity != who.identity:
            end = point
            break
    return _shift(schedule, who, start, end)


def _chunk(schedule: ScheduleConfig) -> timedelta:
    shortest = min((layer.shift_length for layer in schedule.layers if layer.participants), default=None)
    return min(shortest or timedelta(days=1), timedelta(days=1))


def _points_down(
    schedule: ScheduleConfig, at: datetime, floor: datetime, overrides: list[OverrideSpan]
) -> Iterator[datetime]:
    """The change points in [floor, at], latest first, found a chunk at a time."""
    step, high = _chunk(schedule), at + timedelta(microseconds=1)
    while high > floor:
        low = max(high - step, floor)
        yield from reversed(_points(schedule, low, high, overrides))
        high, step = low, min(step * 2, timedelta(days=32))


def _points_up(
    schedule: ScheduleConfig, at: datetime, ceiling: datetime, overrides: list[OverrideSpan]
) -> Iterator[datetime]:
    """The change points in (at, ceiling), earliest first, found a chunk at a time."""
    step, low = _chunk(schedule), at + timedelta(microseconds=1)
    while low < ceiling:
        high = min(low + step, ceiling)
        yield from _points(schedule, low, high, overrides)
        low, step = high, min(step * 2, timedelta(days=32))


def _lookback(schedule: ScheduleConfig) -> timedelta:
    longest = max((layer.shift_length for layer in schedule.layers), default=timedelta(days=1))
    return max(longest, timedelta(days=1)) * 2


def _shift(schedule: ScheduleConfig, who: _Who, start: datetime, end: datetime) -> Shift:
    override_id = (
        int(who.override.split(":", 1)[1]) if who.override and who.override.startswith("override:") else None
    )
    source = {"layer": f"layer:{who.layer}", "override": "override", "none": "none"}[who.source]
    return Shift(schedule.name, who.person, start, end, source, who.layer, override_id)


def _restriction_breakpoints(layer: LayerConfig, start: datetime, end: datetime) -> list[datetime]:
    zone = _zone(layer.time_zone)
    points: list[datetime] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    times = frozenset(clock for r in layer.restrictions for clock in (r.start, r.end))
    while day <= last:
        points.extend(_restriction_edges(day, times, layer.time_zone))
        day += timedelta(days=1)
    return points


@lru_cache(maxsize=8192)
def _restriction_edges(day: date, times: frozenset[str], zone_key: str) -> tuple[datetime, ...]:
    """Where a layer's restrictions start or end on ``day`` (its local date), in UTC."""
    return tuple(_local_to_utc(datetime.combine(day, _clock(clock)), zone_key) for clock in times)


def _points(
    schedule: ScheduleConfig, start: datetime, end: datetime, overrides: list[OverrideSpan]
) -> list[datetime]:
    """Every instant in [start, end) where who is on call may change (hand-offs, restriction edges,
    override edges), in order."""
    points: set[datetime] = set()
    for layer in schedule.layers:
        if not layer.participants:
            continue
        first = max(layer_shift_index(layer, start), -1)
        last = layer_shift_index(layer, end)
        for index in range(first, last + 2):
            points.add(layer_boundary(layer, max(index, 0)))
        if layer.restrictions:
            points.update(_restriction_breakpoints(layer, start, end))
    for override in overrides:
        points.update((override.start, override.end))
    return sorted(p for p in points if start <= p < end)


def shifts_between(
    schedule: ScheduleConfig, start: datetime, end: datetime, overrides: list[OverrideSpan]
) -> list[Shift]:
    """The final schedule over [start, end): consecutive shifts (one per hand-off, override or gap)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    ordered = sorted({start, *_points(schedule, start, end, overrides)})
    shifts: list[Shift] = []
    current: _Who | None = None
    current_start = start
    for point in ordered:
        who = _who(schedule, point, overrides)
        if current is None:
            current, current_start = who, point
        elif who.identity != current.identity:
            shifts.append(_shift(schedule, current, current_start, point))
            current, current_start = who, point
    if current is not None:
        shifts.append(_shift(schedule, current, current_start, end))
    return shifts


def next_shifts(
    schedule: ScheduleConfig, after: datetime, count: int, overrides: list[OverrideSpan]
) -> list[Shift]:
    """The shift covering ``after`` and the ones that follow, ``count`` in all (gaps included)."""
    after = after.astimezone(UTC)
    lookback = _lookback(schedule)
    window = max(lookback, timedelta(days=7))
    while True:
        found = shifts_between(schedule, after - lookback, after + window, overrides)
        upcoming = [s for s in found if s.end > after]
        if upcoming and upcoming[0].start <= after - lookback and lookback < MAX_HORIZON:
            # The shift in progress began before the look-back (a month-long override): look further back
            # rather than report the look-back's edge as its start.
            lookback = min(lookback * 2, MAX_HORIZON)
            continue
        # The last shift is cut at the window's end; only trust it when the window is the horizon.
        complete = upcoming[:-1] if window < MAX_HORIZON else upcoming
        if len(complete) >= count or window >= MAX_HORIZON:
            return complete[:count]
        window = min(window * 2, MAX_HORIZON)
