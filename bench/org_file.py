"""A big org file, in process: how long parsing it takes, and "who is on call now" over all its schedules.

    .venv/bin/python bench/big_org.py > /tmp/big.yaml
    .venv/bin/python bench/org_file.py /tmp/big.yaml [--rounds 20] [--at 2026-12-07T18:00:00+00:00]

Parse: ``parse_org_config`` on the file's text (YAML, duplicate-key check, validation), best of --rounds/4
runs; beside it PyYAML alone with the pure-Python and the C (libyaml) safe loader. Who is on call: what
``GET /api/v1/oncall`` computes per schedule (``on_call_at`` with the schedule's own overrides; the database
part is left out) for every schedule, first once (cold: nothing remembered yet), then --rounds times one
second later each (as a client polling), best and median; and ``next_shifts(..., 1, ...)``, the full
computation ``on_call_at`` must agree with, checked on every answer. Then the whole service call
behind ``GET /api/v1/oncall`` (``oncall.service.who_is_on_call``: runtime overrides read from a fresh,
migrated SQLite file, answers built), --rounds times. CPU time of this process (``time.process_time``),
so other load on the machine counts less.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from warroom import migrate
from warroom.db import Database
from warroom.oncall import service
from warroom.oncall.schedule import config_overrides, next_shifts, on_call_at
from warroom.orgconfig import parse_org_config


def _cpu(call: object, *args: object) -> float:
    started = time.process_time()
    call(*args)  # type: ignore[operator]
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("org_file", type=Path)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--at", default="2026-12-07T18:00:00+00:00")
    args = parser.parse_args()
    text = args.org_file.read_text()

    parse_rounds = max(args.rounds // 4, 1)
    best = min(_cpu(parse_org_config, text, str(args.org_file)) for _ in range(parse_rounds))
    pure = min(_cpu(yaml.load, text, yaml.SafeLoader) for _ in range(parse_rounds))
    fast = min(_cpu(yaml.load, text, yaml.CSafeLoader) for _ in range(parse_rounds))
    print(f"{args.org_file}: {len(text.splitlines())} lines")
    print(f"parse_org_config: {best:.3f} s (best of {parse_rounds})")
    print(f"  yaml.load alone: SafeLoader {pure:.3f} s, CSafeLoader {fast:.3f} s")

    org = parse_org_config(text, str(args.org_file))
    schedules = [(schedule, config_overrides(schedule)) for schedule in org.schedules]
    at = datetime.fromisoformat(args.at)

    def who(moment: datetime) -> None:
        for schedule, overrides in schedules:
            on_call_at(schedule, moment, overrides)

    def full(moment: datetime) -> None:
        for schedule, overrides in schedules:
            next_shifts(schedule, moment, 1, overrides)

    cold = _cpu(who, at)
    warm = [_cpu(who, at + timedelta(seconds=n + 1)) for n in range(args.rounds)]
    whole = [_cpu(full, at + timedelta(seconds=n + 1)) for n in range(max(args.rounds // 4, 1))]
    for n in range(args.rounds):
        moment = at + timedelta(seconds=n + 1)
        for schedule, overrides in schedules:
            assert on_call_at(schedule, moment, overrides) == next_shifts(schedule, moment, 1, overrides)[0]
    count = len(schedules)
    print(f"who is on call, {count} schedules at {at.isoformat()}:")
    print(f"  on_call_at cold: {cold * 1000:.1f} ms")
    print(
        f"  on_call_at warm: best {min(warm) * 1000:.1f} ms, median {statistics.median(warm) * 1000:.1f} ms"
        f" ({statistics.median(warm) / count * 1e6:.0f} µs a schedule; {args.rounds} rounds)"
    )
    print(f"  next_shifts(..., 1, ...): median {statistics.median(whole) * 1000:.1f} ms (same answers)")

    with tempfile.TemporaryDirectory() as scratch:
        db = Database(f"sqlite:///{scratch}/bench.db")
        migrate.upgrade(db.engine)
        calls = []
        for n in range(args.rounds):
            with Session(db.engine) as session:
                started = time.process_time()
                service.who_is_on_call(session, org=org, at=at + timedelta(seconds=n + 1))
                calls.append(time.process_time() - started)
        db.engine.dispose()
    print(
        f"  service.who_is_on_call (GET /api/v1/oncall without HTTP): best {min(calls) * 1000:.1f} ms,"
        f" median {statistics.median(calls) * 1000:.1f} ms"
    )


if __name__ == "__main__":
    main()
