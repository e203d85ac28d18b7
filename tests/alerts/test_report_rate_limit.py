"""The public report form's limit counts per client, however the client writes its address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warroom.alerts.ratelimit import UNREADABLE_ADDRESS, RateLimit, client_bucket
from warroom.clock import clock
from warroom.context import AppContext


def test_addresses_count_per_host_however_they_are_written() -> None:
    assert client_bucket("203.0.113.9") == "203.0.113.9"
    assert client_bucket("::ffff:203.0.113.9") == "203.0.113.9"
    # One IPv6 host holds a /64: every address in it, in any spelling, is one bucket.
    same_host = ["2001:db8::1", "2001:0db8:0000::2", "2001:DB8::ffff:1", "2001:db8:0:0:1:2:3:4"]
    assert {client_bucket(address) for address in same_host} == {"2001:db8::/64"}
    assert client_bucket("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert {client_bucket(text) for text in ["garbage1", "garbage2", "", "unknown"]} == {UNREADABLE_ADDRESS}


def test_the_limit_holds_across_spellings(context: AppContext) -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    limit = RateLimit(3, timedelta(minutes=1))

    def take(address: str) -> int | None:
        with context.db.write() as session:
            return limit.take(session, address)

    for address in ["2001:db8::1", "2001:0db8::2", "2001:db8::3"]:
        assert take(address) is None
    assert take("2001:db8::4") == 60  # the fourth from the same /64
    assert [take(f"garbage{n}") for n in range(4)] == [None, None, None, 60]
    clock.advance(timedelta(seconds=10))
    with context.db.read() as session:
        assert limit.wait(session, "2001:db8::5") == 50  # a read counts nothing
    assert take("2001:db8::5") == 50
    assert take("203.0.113.1") is None
    clock.advance(timedelta(seconds=50))
    assert take("2001:db8::6") is None  # the first three left the window
