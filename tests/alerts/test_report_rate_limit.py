"""The public report form's limit counts per client, however the client writes its address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from warroom.alerts.ratelimit import UNREADABLE_ADDRESS, RateLimiter, client_bucket
from warroom.clock import clock


def test_addresses_count_per_host_however_they_are_written() -> None:
    assert client_bucket("203.0.113.9") == "203.0.113.9"
    assert client_bucket("::ffff:203.0.113.9") == "203.0.113.9"
    # One IPv6 host holds a /64: every address in it, in any spelling, is one bucket.
    same_host = ["2001:db8::1", "2001:0db8:0000::2", "2001:DB8::ffff:1", "2001:db8:0:0:1:2:3:4"]
    assert {client_bucket(address) for address in same_host} == {"2001:db8::/64"}
    assert client_bucket("2001:db8:0:1::1") == "2001:db8:0:1::/64"
    assert {client_bucket(text) for text in ["garbage1", "garbage2", "", "unknown"]} == {UNREADABLE_ADDRESS}


def test_the_limit_holds_across_spellings_and_a_full_table_forgets_the_quietest() -> None:
    clock.set(datetime(2026, 3, 2, 10, 0, tzinfo=UTC))
    limiter = RateLimiter(3, timedelta(minutes=1), max_clients=3)
    for address in ["2001:db8::1", "2001:0db8::2", "2001:db8::3"]:
        assert limiter.check(address) is None
    assert limiter.check("2001:db8::4") == 60  # the fourth from the same /64
    assert [limiter.check(f"garbage{n}") for n in range(4)] == [None, None, None, 60]
    # The table is full (two buckets of three): new clients push out the least recently seen, never everyone.
    clock.advance(timedelta(seconds=10))
    assert limiter.check("2001:db8::5") == 50  # the /64 is seen again, so it is the most recent
    assert limiter.check("203.0.113.1") is None  # the table's third bucket
    assert limiter.check("203.0.113.2") is None  # a fourth: the garbage bucket goes, not the /64
    assert limiter.check("2001:db8::6") == 50  # still limited
