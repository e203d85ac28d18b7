"""Alerts by email: for the tools that can only send mail (backup software, a NAS, a UPS, cron's MAILTO,
Nagios and Zabbix set up long ago).

``warroom serve`` listens for SMTP when ``mail_intake_port`` is set. The recipient's local part is the key of
an ``email`` integration (``<key>@anything``), so the address is the secret, as with PagerDuty's email
integrations. The recipients' keys are taken out of the message before it is read (``from_email``'s ``keys``):
MTAs write the address into headers that are kept, and viewers read them. So is every other active
integration's key that would be stored with it (``Cc: <other key>@…``, a forwarded message naming one): a
viewer must not learn another integration's secret from a message either. Each message is one alert event:

- the subject is the summary; the dedup key is the sender and the subject with its state words taken out, so
  "** PROBLEM Service Alert: web01/HTTP is CRITICAL **" and its "** RECOVERY … is OK **" are one alert;
- a subject that starts with a recovery word (RESOLVED, RECOVERY, OK, …) resolves it;
- ``X-Warroom-Dedup-Key``, ``X-Warroom-Status`` (firing, acknowledged, resolved) and ``X-Warroom-Severity``
  headers say it outright, for senders that can set headers.

The server answers ``250`` only once the alert is committed, so a sender's MTA keeps (and retries) a message
it was not told was stored: ``451`` for a database that is down, ``550`` for an unknown or revoked key,
``554`` for a message that cannot be read (over ``adapters.MIME_MAX_PARTS`` parts, or parts nested over
``adapters.MIME_MAX_DEPTH`` deep, among them) and ``552`` for one over the size limit. Each of these is
counted in ``warroom_alert_deliveries_rejected_total{source="email"}``, as the HTTP intake's refusals are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, Envelope, Session

from warroom.alerts import scrub
from warroom.alerts.adapters import AlertEvent, from_email
from warroom.alerts.intake import ingest_alone
from warroom.alerts.metrics import count_refused, refusal_reason
from warroom.auth.models import IntegrationType
from warroom.errors import Forbidden, Unauthorized, WarroomError

if TYPE_CHECKING:
    from warroom.context import AppContext
    from warroom.settings import Settings

log = logging.getLogger("warroom.alerts.mail")
# aiosmtpd's logger: at INFO it logs each command line it reads ("rcpt TO:<KEY@…>") and each recipient, and
# the address is the secret. ``serve`` keeps it to warnings, and its lines name no key at any level.
SMTP_LOGGER = "mail.log"

SOURCE = "email"
MAX_RECIPIENTS = 20
# Integration keys are 32 lowercase hex digits (``integrations.create_integration``): an MTA that lowercases
# addresses cannot break them.
_KEY = re.compile(r"[0-9a-f]{32}")
# The scrubber's (``scrub``), shared with heartbeat output and every other text stored from outside.
REDACTED_KEY = scrub.REDACTED_KEY
_KEY_IN_TEXT = scrub.KEY_IN_TEXT
MAX_KEY_WINDOWS = scrub.MAX_KEY_WINDOWS
_key_windows = scrub.key_windows


class RedactKeys(logging.Filter):
    """Replaces what looks like an integration key in a log record's message with ``[key]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _KEY_IN_TEXT.sub(REDACTED_KEY, message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def quiet_smtp_log() -> None:
    """Keep aiosmtpd's logger from writing keys: to warnings, unless logging was set up for it on purpose
    (its lines are redacted all the same)."""
    smtp_log = logging.getLogger(SMTP_LOGGER)
    if smtp_log.level == logging.NOTSET:
        smtp_log.setLevel(logging.WARNING)
    if not any(isinstance(f, RedactKeys) for f in smtp_log.filters):
        smtp_log.addFilter(RedactKeys())


class MailIntake:
    """The aiosmtpd handler: each recipient is an integration key, checked as it is given; the message is
    stored for each of them before ``250`` is answered."""

    def __init__(self, context: AppContext) -> None:
        self.context = context

    async def handle_RCPT(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        local_part = address.rsplit("@", 1)[0].strip().lower()
        if not _KEY.fullmatch(local_part):
            return _refused(
                "unauthorized", "550 5.1.1 No such mailbox: the local part must be an email integration's key"
            )
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            # Not a refusal: the MTA sends the message to the other recipients in a transaction of its own.
            return f"452 4.5.3 Too many recipients (at most {MAX_RECIPIENTS} per message)"
        refused = await asyncio.to_thread(self._refusal, local_part)
        if refused is not None:
            return refused
        envelope.rcpt_tos.append(local_part)
        return "250 2.1.5 OK"

    def _refusal(self, key: str) -> str | None:
        from warroom.auth import integrations

        try:
            # Read only: no commit (and no fsync) per recipient, and no SQLite write lock taken inside a read
            # transaction (which fails at once when another writer holds it). The key's last use is written
            # when the message is stored.
            with self.context.db.read() as session:
                integrations.authenticate_integration(session, key, IntegrationType.email, record_use=False)
        except Unauthorized as exc:
            return _refused(exc.code, "550 5.7.1 No such mailbox: the key is unknown or revoked")
        except Forbidden as exc:
            return _refused(exc.code, "550 5.7.1 No such mailbox: the key is not an email integration's")
        except Exception as exc:
            log.exception("mail intake: cannot check a recipient")
            return _refused(refusal_reason(exc), "451 4.3.0 Cannot check the recipient now; try again later")
        return None

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            # In a thread: a message's parts take time to build (up to MIME_MAX_PARTS of them), and the loop
            # is the web server's too.
            event = await asyncio.to_thread(
                self._read, raw, list(dict.fromkeys(envelope.rcpt_tos)), envelope.mail_from or ""
            )
        except WarroomError as exc:
            return _refused(exc.code, f"554 5.6.0 {exc.message}"[:500])
        except Exception as exc:
            log.exception("mail intake: cannot look for integration keys in a message")
            return _refused(refusal_reason(exc), "451 4.3.0 Cannot store the message now; try again later")
        stored = []
        for key in dict.fromkeys(envelope.rcpt_tos):
            try:
                ingested = await asyncio.to_thread(
                    ingest_alone, self.context, key, IntegrationType.email, SOURCE, [_copy(event)]
                )
            except (Unauthorized, Forbidden) as exc:
                return _refused(exc.code, "550 5.7.1 The key was revoked while the message was sent")
            except WarroomError as exc:
                return _refused(exc.code, f"554 5.6.0 {exc.message}"[:500])
            except Exception as exc:
                log.exception("mail intake: cannot store a message")
                # Nothing is lost: the sender's MTA keeps the message and tries again.
                return _refused(
                    refusal_reason(exc), "451 4.3.0 Cannot store the message now; try again later"
                )
            stored += [f"ALR-{alert.id} {alert.outcome}" for alert in ingested.alerts if alert.id is not None]
        return f"250 2.0.0 OK: {', '.join(stored) or 'nothing to change'}"

    def _read(self, raw: bytes, recipients: list[str], envelope_sender: str = "") -> AlertEvent:
        """The message's event, with every active integration key taken out of all that is stored of it:
        the recipients' (``from_email``'s ``keys``), and any other that the event, so read, still shows.
        Read again with those too (rarely: a message naming another key), until it shows none.
        ``envelope_sender`` (``MAIL FROM``) is the sender of a message without a ``From:`` header."""
        keys = list(recipients)
        active: set[str] | None = None  # the active keys' hashes, read once, when the message has hex runs
        while True:
            event = from_email(raw, self.context.org.automation.email_rules, keys, envelope_sender)
            candidates = _key_windows(_texts(event)) - set(keys)
            if not candidates:
                return event
            if active is None:
                active = self._active_key_hashes()
            others = scrub.active_keys_in(candidates, active)
            if not others:
                return event
            keys += others

    def _active_key_hashes(self) -> set[str]:
        with self.context.db.read() as session:
            return scrub.active_key_hashes(session)


def _texts(event: AlertEvent) -> Iterator[str]:
    """Every text of ``event`` that is stored (summary, dedup key, labels, annotations, links, raw view)."""
    yield event.summary
    yield event.dedup_key
    yield from _strings([event.labels, event.annotations, event.links, event.raw])


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        yield from _strings(list(value.keys()))
        yield from _strings(list(value.values()))
    elif isinstance(value, Iterable):
        for item in value:
            yield from _strings(item)


def _refused(reason: str, reply: str) -> str:
    """An SMTP refusal of a delivery (or of one recipient's copy of it), counted as the HTTP intake counts
    its refusals."""
    count_refused(SOURCE, reason)
    return reply


# Lines aiosmtpd reads before it lets the event loop run something else (``_IntakeSMTP``): about a
# millisecond's work.
LINES_PER_TURN = 256


class _IntakeSMTP(SMTP):
    """aiosmtpd's server, counting the refusals it makes itself: a message over the size limit (``552`` at
    ``MAIL`` for a declared size, or at the end of ``DATA``) and one with a line over SMTP's limit.

    It also lets the event loop (the web server's) run other work between lines. aiosmtpd reads ``DATA`` a
    line at a time, and a line already received is returned without giving up the loop: a socket read hands
    it up to 256 KiB at once, so a message of short lines (1 MiB of them: 350,000 lines) held every other
    request for a third of a second per read, about a second in all. (aiosmtpd's own pass over the lines
    once the message is in, to undo dot-stuffing, stays on the loop: 0.1 s or so for such a one on a busy
    machine.)"""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _take_turns(self._reader)

    async def push(self, status: AnyStr) -> None:
        line = status if isinstance(status, str) else status.decode("ascii", "replace")
        if line.startswith("552 "):
            count_refused(SOURCE, "payload_too_large")
        elif line.startswith("500 Line too long"):
            count_refused(SOURCE, "invalid_payload")
        await super().push(status)


def _take_turns(reader: asyncio.StreamReader) -> None:
    """Make ``reader.readuntil`` give the event loop a turn every ``LINES_PER_TURN`` lines (once per reader:
    STARTTLS makes the connection again on the same one)."""
    if getattr(reader, "_takes_turns", False):
        return
    read_line = reader.readuntil
    lines = 0

    async def readuntil(separator: bytes = b"\n") -> bytes:
        nonlocal lines
        lines += 1
        if lines % LINES_PER_TURN == 0:
            await asyncio.sleep(0)
        return await read_line(separator)

    reader.readuntil = readuntil  # type: ignore[method-assign,assignment]
    reader._takes_turns = True  # type: ignore[attr-defined]


def _copy(event: AlertEvent) -> AlertEvent:
    """Each recipient's own event: intake sets the integration's default service on it."""
    return dataclasses.replace(event, labels=dict(event.labels), annotations=dict(event.annotations))


class MailTLSError(Exception):
    """The mail intake's certificate or key cannot be used."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The context STARTTLS uses, or None when no certificate is set (plain SMTP)."""
    if settings.mail_intake_tls_cert is None:
        if settings.mail_intake_tls_key is not None:
            raise MailTLSError("a TLS key for the mail intake was given without its certificate")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(settings.mail_intake_tls_cert, settings.mail_intake_tls_key)
    except ssl.SSLError as exc:  # before OSError, which it is a kind of
        raise MailTLSError(
            f"the mail intake's certificate or key is not usable (PEM, and the key must match): {exc}"
        ) from None
    except OSError as exc:
        raise MailTLSError(f"cannot read the mail intake's certificate or key: {exc}") from None
    return context


async def serve(
    context: AppContext, settings: Settings, listener: socket.socket | None = None
) -> asyncio.AbstractServer:
    """Listen for SMTP on the running event loop (the web server's): on ``listener`` when the caller bound
    the port already, else on ``mail_intake_host:mail_intake_port``."""
    assert settings.mail_intake_port is not None
    quiet_smtp_log()
    handler = MailIntake(context)
    tls = tls_context(settings)
    require_tls = tls is not None and settings.mail_intake_require_tls
    loop = asyncio.get_running_loop()

    def session() -> _IntakeSMTP:
        return _IntakeSMTP(
            handler,
            data_size_limit=settings.mail_intake_max_bytes,
            hostname="warroom",
            ident="Warroom mail intake",
            tls_context=tls,
            require_starttls=require_tls,
        )

    if listener is not None:
        server = await loop.create_server(session, sock=listener)
    else:
        server = await loop.create_server(
            session, host=settings.mail_intake_host, port=settings.mail_intake_port
        )
    log.info(
        "mail intake listening on %s:%d (%s)",
        settings.mail_intake_host,
        settings.mail_intake_port,
        "STARTTLS required" if require_tls else "STARTTLS offered" if tls else "plain SMTP, no TLS",
    )
    return server
