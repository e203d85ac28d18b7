"""Mail intake: a large message of short lines does not hold the event loop it shares with the web server.

aiosmtpd reads ``DATA`` a line at a time and returns a line already received without giving up the loop; one
socket read hands it up to 256 KiB, so 1 MiB of 3-byte lines (350,000 of them) held every other request for
about a second. The intake's server now gives the loop a turn every ``LINES_PER_TURN`` lines. Counted in
lines, not timed: aiosmtpd logs each ``DATA`` line it reads (at debug), and a task on the same loop notes how
many were read between two of its turns."""

from __future__ import annotations

import asyncio
import logging
import smtplib

from sqlalchemy import select

from tests.peers import free_port
from warroom.alerts import mail
from warroom.alerts.models import Alert
from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext
from warroom.settings import Settings

LINES = 60_000  # 180 KB of 3-byte lines


class _LinesRead(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines = 0

    def emit(self, record: logging.LogRecord) -> None:
        if str(record.msg).startswith("DATA readline"):
            self.lines += 1


def test_a_message_of_many_short_lines_gives_the_loop_turns_while_it_is_read(
    context: AppContext, settings: Settings
) -> None:
    with context.db.write() as session:
        key = integrations.create_integration(
            session, org=context.org, name="nas", type=IntegrationType.email
        ).key
    raw = ("From: backup@nas.example\r\nSubject: backup log\r\n\r\n" + "a\r\n" * LINES).encode()
    smtp_log = logging.getLogger(mail.SMTP_LOGGER)
    counter = _LinesRead()
    level = smtp_log.level
    smtp_log.setLevel(logging.DEBUG)
    smtp_log.addHandler(counter)

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
            client.sendmail("backup@nas.example", [f"{key}@warroom.example"], raw)

    async def run() -> int:
        port = free_port()
        server = await mail.serve(context, settings.model_copy(update={"mail_intake_port": port}))
        longest = 0
        done = False

        async def other_work() -> None:
            nonlocal longest
            seen = counter.lines
            while not done:
                await asyncio.sleep(0)
                longest = max(longest, counter.lines - seen)
                seen = counter.lines

        watcher = asyncio.create_task(other_work())
        try:
            await asyncio.to_thread(send, port)
        finally:
            done = True
            await watcher
            server.close()
            await server.wait_closed()
        return longest

    try:
        longest = asyncio.run(run())
    finally:
        smtp_log.removeHandler(counter)
        smtp_log.setLevel(level)
    assert counter.lines == LINES + 4  # and the two headers, the blank line and the final "."
    # A turn every LINES_PER_TURN lines (256); before, every socket read (tens of thousands of lines).
    assert longest <= 1000, longest
    with context.db.read() as session:
        assert session.scalars(select(Alert.summary)).all() == ["backup log"]
