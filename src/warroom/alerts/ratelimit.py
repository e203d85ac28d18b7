"""A per-address sliding-window limit for the public report form, counted in the database (``ReportHit``):
every process on one database counts the same reports, so N processes behind a load balancer still allow a
client the limit, not N times it."""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from warroom.alerts.models import ReportHit
from warroom.clock import clock
from warroom.db import utcnow
from warroom.durations import format_duration

log = logging.getLogger("warroom.alerts")

# One IPv6 host usually holds a whole /64 and can send from any address in it.
IPV6_PREFIX = 64
UNREADABLE_ADDRESS = "unreadable address"


def client_bucket(host: str) -> str:
    """The bucket a client address counts in: an IPv4 address (also when written as IPv4-mapped IPv6), or
    the /64 an IPv6 address lies in, however it was written. Text that is no address (a proxy passing on what
    a client put in X-Forwarded-For) shares one bucket, so inventing addresses gains nothing."""
    try:
        address = ipaddress.ip_address(host.strip())
    except ValueError:
        return UNREADABLE_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass(frozen=True)
class RateLimit:
    """``limit`` reports per client bucket in any ``period``."""

    limit: int
    period: timedelta

    def wait(self, session: Session, client: str) -> int | None:
        """The seconds the client address ``client`` must wait before its next report (for Retry-After), or
        None when it may send one now. Counts nothing: a read, so a client over the limit costs no write."""
        return self._wait(session, client_bucket(client), utcnow())

    def take(self, session: Session, client: str) -> int | None:
        """In a write transaction: as ``wait``, and when the client may send, its report is counted (in the
        transaction that stores the report, so a report that is not stored is not counted either)."""
        bucket = client_bucket(client)
        if session.get_bind().dialect.name == "postgresql":
            # PostgreSQL runs these transactions at once: a bucket's take their turns until commit, so that
            # two reports cannot both see the last free place. SQLite has one writer at a time.
            lock_id = int.from_bytes(
                hashlib.blake2b(f"report-limit|{bucket}".encode(), digest_size=8).digest(), "big", signed=True
            )
            session.execute(select(func.pg_advisory_xact_lock(lock_id)))
        now = utcnow()
        wait = self._wait(session, bucket, now)
        if wait is None:
            session.add(ReportHit(bucket=bucket, at=now))
            session.flush()
        return wait

    def _wait(self, session: Session, bucket: str, now: datetime) -> int | None:
        # The bucket's newest hits in the window, up to the limit: with as many, the oldest of them must
        # leave the window first.
        newest = list(
            session.scalars(
                select(ReportHit.at)
                .where(ReportHit.bucket == bucket, ReportHit.at > now - self.period)
                .order_by(ReportHit.at.desc())
                .limit(self.limit)
            )
        )
        if len(newest) < self.limit:
            return None
        return max(1, math.ceil((newest[-1] + self.period - now).total_seconds()))


# A rate-limited client is logged at most this often per bucket: a flood must not flood the log as well.
REFUSAL_LOG_INTERVAL = timedelta(minutes=1)
# Buckets whose last line is older than the interval are forgotten once this many are remembered.
_REMEMBERED_BUCKETS = 10_000


def _proxy_hint(bucket: str) -> str:
    """A reminder for buckets that look like a proxy's: a private or loopback address (or text that is no
    address) is where every client of a reverse proxy lands when it is not trusted."""
    try:
        network = ipaddress.ip_network(bucket)
    except ValueError:
        shared = True
    else:
        shared = network.is_private or network.is_loopback
    return (
        "; if this is a reverse proxy, all its clients share this limit unless WARROOM_FORWARDED_ALLOW_IPS "
        "names it"
        if shared
        else ""
    )


class RefusalLog:
    """Logs the public form's rate-limited refusals: one line per client bucket at most once a ``interval``,
    saying how many were refused since the last line. An operator behind a proxy that is not trusted sees
    every customer refused in one bucket; one line per refusal would let a flood fill the log. Per process
    (each process logs its own refusals)."""

    def __init__(self, interval: timedelta = REFUSAL_LOG_INTERVAL) -> None:
        self.interval = interval
        # bucket -> (when its last line was logged, refusals not logged since)
        self._buckets: dict[str, tuple[datetime, int]] = {}

    def refused(self, client: str, limit: RateLimit) -> None:
        bucket = client_bucket(client)
        now = clock.now()
        last = self._buckets.get(bucket)
        if last is not None and now - last[0] < self.interval:
            self._buckets[bucket] = (last[0], last[1] + 1)
            return
        rate = f"{limit.limit} per {format_duration(limit.period)}"
        if last is None:
            log.warning(
                "public report refused from %s: over the rate limit (%s)%s; further refusals from it are "
                "logged at most once every %s",
                bucket,
                rate,
                _proxy_hint(bucket),
                format_duration(self.interval),
            )
        else:
            log.warning(
                "public reports refused from %s: %d since %s (over the rate limit, %s)%s",
                bucket,
                last[1] + 1,
                last[0].strftime("%Y-%m-%d %H:%M:%S UTC"),
                rate,
                _proxy_hint(bucket),
            )
        if len(self._buckets) >= _REMEMBERED_BUCKETS:
            self._buckets = {
                key: value for key, value in self._buckets.items() if now - value[0] < self.interval
            }
        self._buckets[bucket] = (now, 0)
