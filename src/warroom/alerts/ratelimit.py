"""A per-address sliding-window limit for the public report form (per process, in memory)."""

from __future__ import annotations

import math
import threading
from collections import deque
from datetime import datetime, timedelta

from warroom.db import utcnow


class RateLimiter:
    def __init__(self, limit: int, period: timedelta, *, max_clients: int = 100_000) -> None:
        self.limit = limit
        self.period = period
        self.max_clients = max_clients
        self._hits: dict[str, deque[datetime]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> int | None:
        """Count a hit; return None when allowed, else the seconds to wait (for Retry-After)."""
        now = utcnow()
        with self._lock:
            hits = self._hits.get(client)
            if hits is None:
                if len(self._hits) >= self.max_clients:
                    self._hits.clear()  # bounded memory beats perfect fairness under an address flood
                hits = self._hits[client] = deque()
            while hits and now - hits[0] >= self.period:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, math.ceil((hits[0] + self.period - now).total_seconds()))
            hits.append(now)
            return None
