"""The channels: email over SMTP, Slack incoming webhook, signed JSON webhook, console.

Each sender raises ``DeliveryError`` (or lets a network error through) when the message did not get
out; the job machinery retries with backoff. A channel's ``timeout`` bounds the whole delivery, not each wait
on the peer (``warroom.notify.deadline``): past it, the delivery fails with ``DeliveryTimeout``.

Delivery is at least once: a crash between the peer accepting a message and the commit sends it again, so
every message carries its delivery id (``Message-ID`` for email, ``X-Warroom-Delivery`` for webhooks) for
receivers that deduplicate.
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import ssl
import sys
from dataclasses import dataclass, field
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any
from urllib.parse import urlsplit

import httpx
import idna

from warroom import __version__
from warroom.db import utcnow
from warroom.jobs.service import PermanentFailure, RetryLater
from warroom.notify import deadline as deadlines
from warroom.notify.config import (
    ChannelConfig,
    ConsoleChannel,
    EmailChannel,
    MissingSecret,
    SlackChannel,
    WebhookChannel,
    check_recipient,
    expand_env,
)
from warroom.notify.signing import DELIVERY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from warroom.settings import Settings

log = logging.getLogger("warroom.notify")


class DeliveryError(Exception):
    pass


class Undeliverable(DeliveryError, PermanentFailure):
    """The peer refused the message in a way retrying cannot change: it becomes a dead letter at once
    (``warroom notify retry`` sends it again once someone has fixed the cause)."""


# 4xx answers that mean "not now" rather than "never": these are retried like network errors.
_RETRIED_CLIENT_ERRORS = frozenset({408, 409, 423, 425, 429})


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: int
    channel: str
    recipient: str
    template: str
    subject: str
    text: str
    html: str | None = None
    incident: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


# What a message to people outside the org (``external`` in its data: customers, the status page) carries as
# data: what they are told. Its incident's ref, severity, commander, sender and audience stay inside.
EXTERNAL_DATA = ("message", "status", "services")


def outgoing(
    *,
    delivery_id: int,
    channel: str,
    recipient: str,
    template: str,
    subject: str,
    text: str,
    html: str | None,
    incident_id: int | None,
    data: dict[str, Any],
) -> OutgoingMessage:
    """The message a delivery sends. One for outside the org names no incident (no webhook ``incident``, no
    ``X-Warroom-Incident`` header) and carries only ``EXTERNAL_DATA``, as its text does."""
    if data.get("external"):
        incident = None
        data = {key: data[key] for key in EXTERNAL_DATA if key in data}
    else:
        incident = f"INC-{incident_id}" if incident_id else None
    return OutgoingMessage(
        delivery_id=delivery_id,
        channel=channel,
        recipient=recipient,
        template=template,
        subject=subject,
        text=text,
        html=html,
        incident=incident,
        data=data,
    )


def _secret(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return expand_env(value)
    except MissingSecret as exc:
        # The worker's environment lacks it: only a restart with it set can help, then `notify retry`.
        raise Undeliverable(str(exc)) from exc


def _url(configured: str | None, recipient: str, channel: str) -> str:
    """A recipient that is a URL (a person's own Slack or pager hook) wins over the channel's: a page, with
    its acknowledge link, must not go to a shared channel instead of the person."""
    url = recipient if recipient.startswith(("http://", "https://")) else _secret(configured) or recipient
    if not url.startswith(("http://", "https://")):
        raise Undeliverable(f"channel {channel!r} has no URL (settings.url, or a URL as the recipient)")
    try:
        check_recipient(url)
    except ValueError as exc:
        raise Undeliverable(f"channel {channel!r}: {exc}") from None
    return url


def peer_of(channel: ChannelConfig, recipient: str, settings: Settings) -> str | None:
    """Where a message to ``recipient`` through ``channel`` goes: its mail server, or its URL's scheme, host
    and port (never the path or a credential in it). None for the console. A channel whose settings cannot
    be read here (an unset secret) is a peer of its own."""
    try:
        if isinstance(channel, EmailChannel):
            host = _secret(channel.settings.host) or settings.smtp_host
            return f"smtp://{host}:{channel.settings.port or settings.smtp_port}".lower()
        if isinstance(channel, SlackChannel | WebhookChannel):
            split = urlsplit(_url(channel.settings.url, recipient, channel.name))
            return f"{split.scheme}://{split.hostname}:{split.port or ''}".lower().rstrip(":")
    except (Undeliverable, ValueError):
        return f"channel:{channel.name}"
    return None


def _raise_for_answer(response: httpx.Response, peer: str) -> None:
    if response.status_code == 429:
        retry_after = response.headers.get("retry-after", "")
        delay = float(retry_after) if retry_after.isascii() and retry_after.isdigit() else 30.0
        # Waited as asked (at least a second), and counted: a peer that answers 429 for ever ends a dead
        # letter, named as such, instead of a delivery pending with no error.
        raise RetryLater(
            min(max(delay, 1.0), 3600.0), f"{peer} asked to slow down (429)", counts_attempt=True
        )
    if 400 <= response.status_code < 500 and response.status_code not in _RETRIED_CLIENT_ERRORS:
        raise Undeliverable(
            f"{peer} refused it with {response.status_code}, which retrying will not change: "
            f"{response.text[:200]}"
        )
    if response.status_code >= 300:
        raise DeliveryError(f"{peer} answered {response.status_code}: {response.text[:200]}")


def send_email(channel: EmailChannel, message: OutgoingMessage, settings: Settings) -> dict[str, Any]:
    config = channel.settings
    host = _secret(config.host) or settings.smtp_host
    port = config.port or settings.smtp_port
    security = config.security or settings.smtp_security
    username = _secret(config.username) or settings.smtp_username
    password = _secret(config.password) or settings.smtp_password
    sender = _secret(config.from_address) or settings.smtp_from
    recipients = [address.strip() for address in message.recipient.split(",") if address.strip()]
    if not recipients:
        raise DeliveryError("no email recipient")
    ca_file = _secret(config.ca_file)
    tls = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    deadline = deadlines.Deadline(config.timeout, "the mail server")
    unsendable: dict[str, tuple[int, bytes]] = {}
    with (
        deadline.kept(),
        deadlines.DeadlineSMTP(
            host, port, deadline=deadline, implicit_tls=tls if security == "tls" else None
        ) as smtp,
    ):
        if security == "starttls":
            smtp.starttls(context=tls)
        if username:
            smtp.login(username, password or "")
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("smtputf8"):
            # Without SMTPUTF8 an address must be ASCII: a domain can be (IDNA, xn--…), a local part cannot.
            name, address = parseaddr(sender)
            if not address.isascii():
                ascii_sender = _ascii_address(address, "the sender", f"{host}:{port}")
                sender = str(Address(display_name=name, addr_spec=ascii_sender))
            sendable = []
            for recipient in recipients:
                try:
                    sendable.append(_ascii_address(recipient, "the recipient", f"{host}:{port}"))
                except Undeliverable as exc:
                    unsendable[recipient] = (553, str(exc).encode())
            if not sendable:
                raise Undeliverable("; ".join(answer.decode() for _, answer in unsendable.values()))
            recipients = sendable
        email = _email_message(message, sender, recipients)
        try:
            refused = smtp.send_message(email, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            answers = _smtp_answers(exc.recipients | unsendable)
            if all(code >= 500 for code, _ in exc.recipients.values()):
                raise Undeliverable(f"the mail server refused every recipient: {answers}") from exc
            raise DeliveryError(f"the mail server refused every recipient for now: {answers}") from exc
        except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
            if exc.smtp_code >= 500:
                raise Undeliverable(f"the mail server refused the message: {_smtp_answer(exc)}") from exc
            raise
    refused = {**refused, **unsendable}
    info: dict[str, Any] = {"smtp": f"{host}:{port}"}
    if refused:
        # Some recipients got it: the delivery counts as sent, and the ones refused are named with it. Those
        # refused for now (a 4xx: a full mailbox) get the message again later, as a delivery of their own.
        info["refused"] = _smtp_answers(refused)
        info["refused_for_now"] = sorted(address for address, (code, _) in refused.items() if code < 500)
    return info


def _ascii_address(address: str, role: str, server: str) -> str:
    """``address`` as a mail server without SMTPUTF8 takes it: its domain in IDNA (``xn--…``). Undeliverable
    (retrying cannot change it) when its local part is not ASCII or its domain has no IDNA form."""
    local, at, domain = address.rpartition("@")
    if not local.isascii():
        raise Undeliverable(
            f"{role} {address!r} has a non-ASCII name before the @, which the mail server {server} does not "
            "take (it does not offer SMTPUTF8): use an ASCII address, or a mail server that offers SMTPUTF8"
        )
    if domain.isascii():
        return address
    try:
        ascii_domain = idna.encode(domain, uts46=True).decode("ascii")
    except UnicodeError as exc:  # idna.IDNAError
        raise Undeliverable(
            f"{role} {address!r}: its domain is not a valid internationalised domain ({exc})"
        ) from None
    return f"{local}{at}{ascii_domain}"


def _email_message(message: OutgoingMessage, sender: str, recipients: list[str]) -> EmailMessage:
    domain = parseaddr(sender)[1].rpartition("@")[2] or "warroom.local"
    with contextlib.suppress(UnicodeError):
        domain = idna.encode(domain, uts46=True).decode("ascii")
    email = EmailMessage()
    email["From"] = sender
    email["To"] = ", ".join(recipients)
    email["Subject"] = message.subject
    email["Date"] = format_datetime(utcnow())
    # Stable per delivery, so a message sent twice (at-least-once) can be recognised as the same one.
    email["Message-ID"] = f"<warroom.delivery.{message.delivery_id}@{domain}>"
    email[DELIVERY_HEADER] = str(message.delivery_id)
    if message.incident:
        email["X-Warroom-Incident"] = message.incident
    email.set_content(message.text)
    if message.html:
        email.add_alternative(message.html, subtype="html")
    return email


def _smtp_answer(exc: smtplib.SMTPResponseException) -> str:
    error = exc.smtp_error
    text = error.decode(errors="replace") if isinstance(error, bytes) else str(error)
    return f"{exc.smtp_code} {text}"[:200]


def _smtp_answers(refused: dict[str, tuple[int, bytes]]) -> str:
    return "; ".join(
        f"{address} ({code} {message.decode(errors='replace')[:120]})"
        for address, (code, message) in sorted(refused.items())
    )


_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# Slack refuses a section block whose text is longer (escaped, as sent).
SLACK_SECTION_LIMIT = 3000
# Of a text too long for a section, the most its last paragraphs keep (who sent it, the acknowledge link, the
# org's signature), escaped; the start of the text takes the rest.
SLACK_SECTION_TAIL = 1000
CUT_MARK = "…"


def slack_section_text(text: str) -> str:
    """``text`` escaped for a section block's mrkdwn, within ``SLACK_SECTION_LIMIT``. A longer text keeps its
    last paragraphs (up to ``SLACK_SECTION_TAIL``) and as much of its start as fits, cut at a word or line
    boundary before it is escaped (an entity such as ``&amp;`` is never split), ``…`` where it was cut."""
    escaped = _slack_escape(text)
    if len(escaped) <= SLACK_SECTION_LIMIT:
        return escaped
    paragraphs = text.split("\n\n")
    tail: list[str] = []
    kept = 0
    while len(paragraphs) > 1:
        size = len(_slack_escape(paragraphs[-1])) + 2  # and the blank line before it
        if kept + size > SLACK_SECTION_TAIL:
            break
        tail.insert(0, paragraphs.pop())
        kept += size
    start = _slack_cut("\n\n".join(paragraphs), SLACK_SECTION_LIMIT - kept - len(CUT_MARK))
    return _slack_escape(start) + CUT_MARK + "".join(f"\n\n{_slack_escape(part)}" for part in tail)


def _slack_cut(text: str, limit: int) -> str:
    """The longest start of ``text`` whose escaped form is at most ``limit`` characters, shortened to its last
    whole word or line unless that loses more than half of it."""
    room = limit
    end = 0
    for character in text:
        room -= len(_SLACK_ESCAPES.get(character, character))
        if room < 0:
            break
        end += 1
    start = text[:end]
    if end < len(text) and not text[end].isspace():  # in the middle of a word
        boundary = max(start.rfind(space) for space in " \n\t")
        if boundary > end // 2:
            start = start[:boundary]
    return start.rstrip()


def send_slack(channel: SlackChannel, message: OutgoingMessage, settings: Settings) -> dict[str, Any]:
    url = _url(channel.settings.url, message.recipient, channel.name)
    subject = _slack_escape(message.subject)
    text = message.text.strip()
    payload = {
        "text": f"*{subject}*\n{_slack_escape(text)}",  # what notifications and old clients show
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": message.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": slack_section_text(text)}},
        ],
    }
    response = deadlines.post(deadlines.Deadline(channel.settings.timeout, "Slack"), url, json=payload)
    _raise_for_answer(response, "Slack")
    return {"status_code": response.status_code}


def webhook_body(message: OutgoingMessage) -> dict[str, Any]:
    return {
        "delivery_id": message.delivery_id,
        "channel": message.channel,
        "recipient": message.recipient,
        "template": message.template,
        "subject": message.subject,
        "text": message.text,
        "incident": message.incident,
        "data": message.data,
        "sent_at": utcnow().isoformat(),
    }


def send_webhook(channel: WebhookChannel, message: OutgoingMessage, settings: Settings) -> dict[str, Any]:
    url = _url(channel.settings.url, message.recipient, channel.name)
    secret = _secret(channel.settings.secret) or settings.webhook_secret
    if not secret:
        raise Undeliverable(
            f"channel {channel.name!r} has no signing secret (settings.secret or WARROOM_WEBHOOK_SECRET)"
        )
    body = json.dumps(webhook_body(message), separators=(",", ":"), sort_keys=True, default=str).encode()
    timestamp = str(int(utcnow().timestamp()))
    headers = {
        **{name: _secret(value) or "" for name, value in channel.settings.headers.items()},
        "Content-Type": "application/json",
        "User-Agent": f"warroom/{__version__}",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        DELIVERY_HEADER: str(message.delivery_id),
    }
    deadline = deadlines.Deadline(channel.settings.timeout, "the webhook")
    response = deadlines.post(deadline, url, content=body, headers=headers)
    _raise_for_answer(response, "the webhook")
    return {"status_code": response.status_code}


def send_console(channel: ConsoleChannel, message: OutgoingMessage, settings: Settings) -> dict[str, Any]:
    to = f" to {message.recipient}" if message.recipient else ""
    sys.stderr.write(f"[notify:{channel.name}{to}] {message.subject}\n{message.text}\n")
    sys.stderr.flush()
    log.info("console notification %s%s: %s", message.delivery_id, to, message.subject)
    return {"console": True}


def deliver(channel: ChannelConfig, message: OutgoingMessage, settings: Settings) -> dict[str, Any]:
    if isinstance(channel, EmailChannel):
        return send_email(channel, message, settings)
    if isinstance(channel, SlackChannel):
        return send_slack(channel, message, settings)
    if isinstance(channel, WebhookChannel):
        return send_webhook(channel, message, settings)
    return send_console(channel, message, settings)
