"""Alerts by email: for the tools that can only send mail (backup software, a NAS, a UPS, cron's MAILTO,
Nagios and Zabbix set up long ago).

``warroom serve`` listens for SMTP when ``mail_intake_port`` is set. The recipient's local part is the key of
an ``email`` integration (``<key>@anything``), so the address is the secret, as with PagerDuty's email
integrations. Each message is one alert event:

- the subject is the summary; the dedup key is the sender and the subject with its state words taken out, so
  "** PROBLEM Service Alert: web01/HTTP is CRITICAL **" and its "** RECOVERY … is OK **" are one alert;
- a subject that starts with a recovery word (RESOLVED, RECOVERY, OK, …) resolves it;
- ``X-Warroom-Dedup-Key``, ``X-Warroom-Status`` (firing, acknowledged, resolved) and ``X-Warroom-Severity``
  headers say it outright, for senders that can set headers.

The server answers ``250`` only once the alert is committed, so a sender's MTA keeps (and retries) a message
it was not told was stored: ``451`` for a database that is down, ``550`` for an unknown or revoked key and
``554`` for a message that cannot be read.
"""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import logging
import re
from email.message import EmailMessage
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from warroom.alerts.adapters import Action, AlertEvent, InvalidPayload, label_hash, normalize_severity
from warroom.alerts.intake import ingest_alone
from warroom.auth.models import IntegrationType
from warroom.errors import Forbidden, Unauthorized, WarroomError

if TYPE_CHECKING:
    from warroom.context import AppContext

log = logging.getLogger("warroom.alerts.mail")

SOURCE = "email"
MAX_BODY_CHARS = 10_000
MAX_RECIPIENTS = 20
# Integration keys are 32 lowercase hex digits (``integrations.create_integration``): an MTA that lowercases
# addresses cannot break them.
_KEY = re.compile(r"[0-9a-f]{32}")

# Words that lead a subject: replies and forwards, then the state a sender puts first.
_REPLY = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg)\s*:\s*)+", re.IGNORECASE)
_RECOVERED = r"resolved|recovery|recovered|ok|cleared|up"
_FIRING = r"problem|firing(?::\d+)?|alert(?:ing)?|triggered|down|critical|warning|error|unknown"
_LEADING_STATE = re.compile(
    rf"^\s*(?:\*\*\s*)?[\[(]?\s*(?P<state>{_RECOVERED}|{_FIRING})\b\s*[\])]?\s*(?::|-|(?=\S))\s*",
    re.IGNORECASE,
)
# Nagios ends with the state: "… is CRITICAL **", "… is OK **".
_TRAILING_STATE = re.compile(
    r"\s+(?:is|are|now)\s+(?:ok|up|down|critical|warning|unknown|unreachable|recovered|resolved)\s*(?:\*\*)?\s*$",
    re.IGNORECASE,
)
_TRAILING_STARS = re.compile(r"\s*\*\*\s*$")
_SEVERITY_IN_SUBJECT = re.compile(
    r"\b(critical|crit|disaster|emergency|fatal|error|major|warning|warn|minor|info|notice)\b", re.IGNORECASE
)
_STATUS_HEADER = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}


class _TextOfHtml(HTMLParser):
    """The text of an HTML part, for senders that send no plain part."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skipping += 1
        elif tag in ("br", "p", "div", "tr", "li"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def _body_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return ""
    try:
        content = part.get_content()
    except Exception:  # an unknown charset, a broken transfer encoding: the bytes, as far as they go
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    if not isinstance(content, str):
        return ""
    if part.get_content_subtype() == "html":
        parser = _TextOfHtml()
        parser.feed(content)
        content = "".join(parser.parts)
    lines = [line.rstrip() for line in content.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines))


def _clean(text: str) -> str:
    """Text the databases can store: the parser keeps undecodable bytes as lone surrogates, and PostgreSQL
    stores no NUL. Both become replacement characters (as a heartbeat's output does)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def subject_state(subject: str) -> tuple[str, str | None]:
    """The subject without replies' prefixes and state words (what identifies the alert), and the state word
    that led it, lowercased (None: none did)."""
    rest = _REPLY.sub("", subject)
    state = None
    leading = _LEADING_STATE.match(rest)
    if leading:
        state = leading.group("state").lower()
        rest = rest[leading.end() :]
    rest = _TRAILING_STATE.sub("", rest)
    rest = _TRAILING_STARS.sub("", rest)
    return " ".join(rest.split()), state


def from_email(raw: bytes) -> AlertEvent:
    """The alert event of one message, as received (RFC 5322 bytes)."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception as exc:  # the parser is lenient; this is for what it cannot take at all
        raise InvalidPayload(
            f"the message cannot be read: {exc}", [{"field": "message", "message": str(exc)}]
        ) from None
    assert isinstance(message, EmailMessage)
    try:
        headers = [(name, _clean(str(value))) for name, value in message.items()]
        body = _clean(_body_text(message))
    except Exception as exc:  # a header the policy cannot decode
        problem = [{"field": "headers", "message": str(exc)}]
        raise InvalidPayload(f"a header cannot be read: {exc}", problem) from None

    def header(name: str) -> str:
        return next((value for key, value in headers if key.lower() == name), "").strip()

    subject = " ".join(header("subject").split())
    senders = getaddresses([value for key, value in headers if key.lower() == "from"])
    sender = next((address.lower() for _, address in senders if address), "")
    identity, state = subject_state(subject)
    if not identity:
        identity = subject or body.split("\n", 1)[0][:200] or "(no subject)"

    action: Action = "trigger"
    status_header = header("x-warroom-status").lower()
    if status_header:
        if status_header not in _STATUS_HEADER:
            raise InvalidPayload(
                f"X-Warroom-Status {status_header!r} is not one of firing, acknowledged, resolved",
                [{"field": "X-Warroom-Status", "message": "unknown status", "allowed": list(_STATUS_HEADER)}],
            )
        action = _STATUS_HEADER[status_header]  # type: ignore[assignment]
    elif state is not None and re.fullmatch(_RECOVERED, state, re.IGNORECASE):
        action = "resolve"

    severity_header = header("x-warroom-severity")
    if severity_header:
        severity = normalize_severity(severity_header, default="")
        if not severity:
            raise InvalidPayload(
                f"X-Warroom-Severity {severity_header!r} is not a severity",
                [
                    {
                        "field": "X-Warroom-Severity",
                        "message": "unknown severity",
                        "allowed": ["critical", "error", "warning", "info"],
                    }
                ],
            )
    else:
        word = _SEVERITY_IN_SUBJECT.search(subject)
        severity = normalize_severity(word.group(1) if word else None, default="error")
        if action == "resolve" and severity == "info":
            severity = "error"  # "OK" in a recovery names the state, not a severity

    labels = {"alertname": identity[:200], "from": sender}
    dedup_header = header("x-warroom-dedup-key")
    dedup_key = dedup_header[:255] if dedup_header else "email:" + label_hash(labels)
    annotations: dict[str, Any] = {"subject": subject, "description": body[:MAX_BODY_CHARS]}
    message_id = header("message-id")
    if message_id:
        annotations["message_id"] = message_id
    raw_view = {
        "headers": [list(pair) for pair in headers[:100]],
        "body": body[:MAX_BODY_CHARS],
    }
    return AlertEvent(
        action=action,
        dedup_key=dedup_key,
        alert_type="email",
        summary=(subject or identity)[:1000],
        severity=severity,
        service=None,
        labels=labels,
        annotations=annotations,
        links=[],
        raw=raw_view,
    )


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
            return "550 5.1.1 No such mailbox: the local part must be an email integration's key"
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
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
        except Unauthorized:
            return "550 5.7.1 No such mailbox: the key is unknown or revoked"
        except Forbidden:
            return "550 5.7.1 No such mailbox: the key is not an email integration's"
        except Exception:
            log.exception("mail intake: cannot check a recipient")
            return "451 4.3.0 Cannot check the recipient now; try again later"
        return None

    async def handle_DATA(  # aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            event = from_email(raw)
        except WarroomError as exc:
            return f"554 5.6.0 {exc.message}"[:500]
        stored = []
        for key in dict.fromkeys(envelope.rcpt_tos):
            try:
                ingested = await asyncio.to_thread(
                    ingest_alone, self.context, key, IntegrationType.email, SOURCE, [_copy(event)]
                )
            except (Unauthorized, Forbidden):
                return "550 5.7.1 The key was revoked while the message was sent"
            except WarroomError as exc:
                return f"554 5.6.0 {exc.message}"[:500]
            except Exception:
                log.exception("mail intake: cannot store a message")
                # Nothing is lost: the sender's MTA keeps the message and tries again.
                return "451 4.3.0 Cannot store the message now; try again later"
            stored += [f"ALR-{alert.id} {alert.outcome}" for alert in ingested.alerts if alert.id is not None]
        return f"250 2.0.0 OK: {', '.join(stored) or 'nothing to change'}"


def _copy(event: AlertEvent) -> AlertEvent:
    """Each recipient's own event: intake sets the integration's default service on it."""
    return dataclasses.replace(event, labels=dict(event.labels), annotations=dict(event.annotations))


async def serve(context: AppContext, host: str, port: int, max_bytes: int) -> asyncio.AbstractServer:
    """Listen for SMTP on the running event loop (the web server's)."""
    handler = MailIntake(context)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=max_bytes, hostname="warroom", ident="Warroom mail intake"),
        host=host,
        port=port,
    )
    log.info("mail intake listening on %s:%d", host, port)
    return server
