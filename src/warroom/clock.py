"""The one clock everything reads, so tests can move time instead of sleeping.

``clock.now()`` is real UTC time unless a test froze it with ``clock.set(...)``; ``clock.advance(...)``
moves a frozen clock forward. Production code never sets it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    def set(self, moment: datetime) -> None:
        if moment.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self._frozen = moment.astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        self._frozen = self.now() + delta
        return self._frozen

    def reset(self) -> None:
        self._frozen = None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None


clock = Clock()
