"""A per-address sliding-window limit for the public report form (per process, in memory)."""

from __future__ import annotations

import ipaddress
import math
import threading
from collections import OrderedDict, deque
from datetime import datetime, timedelta

from warroom.db import utcnow

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


class RateLimiter:
    def __init__(self, limit: int, period: timedelta, *, max_clients: int = 100_000) -> None:
        self.limit = limit
        self.period = period
        self.max_clients = max_clients
        # Least recently seen first: a full table forgets those, never a client still sending.
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def check(self, client: str) -> int | None:
        """Count a hit of the client address ``client``; return None when allowed, else the seconds to wait
        (for Retry-After)."""
        bucket = client_bucket(client)
        now = utcnow()
        with self._lock:
            hits = self._hits.get(bucket)
            if hits is None:
                while len(self._hits) >= self.max_clients:
                    self._hits.popitem(last=False)
                hits = self._hits[bucket] = deque()
            else:
                self._hits.move_to_end(bucket)
            while hits and now - hits[0] >= self.period:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil((hits[0] + self.period - now).total_seconds()))
            hits.append(now)
            return None
