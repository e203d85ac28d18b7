"""Schedule math: who is on call at an instant, and the shifts over a window. Pure functions, no I/O.

Shift boundaries are computed on the layer's local wall clock (start date + k * shift length at the
hand-off time) and only then turned into UTC, so a daily 09:00 hand-off stays at 09:00 local across
DST changes and the shift around the change is 23 or 25 hours long. A hand-off that falls into a
DST gap moves forward to the first existing local time (dateutil's ``resolve_imaginary``); in a
repeated hour the first occurrence (fold=0) is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
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


def _to_utc(local_naive: datetime, zone: ZoneInfo) -> datetime:
    aware = dateutil_tz.resolve_imaginary(local_naive.replace(tzinfo=zone))
    return aware.astimezone(UTC)


def _base(layer: LayerConfig) -> datetime:
    return datetime.combine(layer.start, parse_clock(layer.handoff_time))


def layer_boundary(layer: LayerConfig, index: int) -> datetime:
    """When shift ``index`` of the layer starts (UTC); shift 0 starts on the start date at hand-off."""
    return _to_utc(_base(layer) + index * layer.shift_length, ZoneInfo(layer.time_zone))


def layer_shift_index(layer: LayerConfig, at: datetime) -> int:
    """The shift index covering ``at`` (negative before the layer starts)."""
    zone = ZoneInfo(layer.time_zone)
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
        start, end = parse_clock(restriction.start), parse_clock(restriction.end)
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
    if not _restricted_in(layer.restrictions, at.astimezone(ZoneInfo(layer.time_zone))):
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
    """The shift covering ``at``, with its real start and end (as far as the look-back/horizon reach)."""
    found = next_shifts(schedule, at, 1, overrides)
    if found:
        return found[0]
    return _shift(schedule, _who(schedule, at, overrides), at, at + MAX_HORIZON)


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
    zone = ZoneInfo(layer.time_zone)
    points: list[datetime] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    times: set[time] = set()
    for restriction in layer.restrictions:
        times.add(parse_clock(restriction.start))
        times.add(parse_clock(restriction.end))
    while day <= last:
        for moment in times:
            points.append(_to_utc(datetime.combine(day, moment), zone))
        day += timedelta(days=1)
    return points


def shifts_between(
    schedule: ScheduleConfig, start: datetime, end: datetime, overrides: list[OverrideSpan]
) -> list[Shift]:
    """The final schedule over [start, end): consecutive shifts (one per hand-off, override or gap)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return []
    points = {start}
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
    ordered = sorted(p for p in points if start <= p < end)
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
