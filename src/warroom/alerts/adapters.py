"""Turn each source's wire format into normalized alert events."""

from __future__ import annotations

import email
import email.errors
import email.policy
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.feedparser import FeedParser
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from pydantic import TypeAdapter, ValidationError

from warroom.alerts.config import AutomationConfig, EmailRule, TemplateRenderer, WebhookFormat
from warroom.alerts.schemas import (
    AlertmanagerWebhook,
    GenericAlert,
    OpsgenieAction,
    OpsgenieAlert,
    OpsgenieDescription,
    OpsgenieDetails,
    OpsgenieMessage,
    OpsgenieNote,
    OpsgeniePriority,
    OpsgenieSnooze,
    OpsgenieTags,
    PagerDutyEvent,
    PagerDutyPayload,
    PagerDutyV1Event,
    safe_link,
)
from warroom.alerts.scrub import scrub_text
from warroom.db import utcnow
from warroom.errors import NotFound, WarroomError
from warroom.fields import one_line, validation_entry, visible_line
from warroom.jsonbody import (
    NOT_JSON,
    NOT_UTF8,
    NUL_MESSAGE,
    SURROGATE_MESSAGE,
    TOO_DEEP,
    nul_field,
    replace_nul,
    storable_text,
)

Action = Literal["trigger", "acknowledge", "resolve"]

# Severity words seen in the wild (Alertmanager labels are free text) mapped onto our four.
_SEVERITY_WORDS = {
    "critical": "critical",
    "crit": "critical",
    "fatal": "critical",
    "emergency": "critical",
    "disaster": "critical",
    "page": "critical",
    "high": "critical",
    "p0": "critical",
    "p1": "critical",
    "error": "error",
    "err": "error",
    "major": "error",
    "p2": "error",
    "warning": "warning",
    "warn": "warning",
    "minor": "warning",
    "medium": "warning",
    "average": "warning",
    "p3": "warning",
    "info": "info",
    "informational": "info",
    "notice": "info",
    "low": "info",
    "none": "info",
    "ok": "info",
    "p4": "info",
}


class InvalidPayload(WarroomError):
    """A malformed body: answered 400 with the fields at fault, nothing stored."""

    status = 400
    code = "invalid_payload"


@dataclass
class AlertEvent:
    action: Action
    dedup_key: str
    alert_type: str
    summary: str
    severity: str
    service: str | None
    labels: dict[str, str]
    annotations: dict[str, Any]
    links: list[dict[str, Any]]
    raw: dict[str, Any]
    # Identity of this exact event: the same delivery again has the same hash.
    event_hash: str = field(default="")
    # Alertmanager and Grafana: the notification's group, and how many of its alerts the sender left out.
    group_key: str | None = None
    truncated_alerts: int = 0
    # The service was inferred (an Alertmanager job label, a PagerDuty component or group), not named: an
    # integration's default service replaces it.
    service_is_guess: bool = False
    # Annotations are as first seen, except where the latest matter more (a failed run's output).
    latest_annotations: bool = False
    # Labels too: except where they are the sender's current state of the alert (a vendor incident's impact).
    latest_labels: bool = False
    # When the source says the trouble began (Alertmanager's startsAt, a PagerDuty payload's timestamp): it
    # may be well before the alert reached us (group_wait, a retry after an outage). None when not said.
    started_at: datetime | None = None
    # Opsgenie's close and acknowledge: who did it at the source (its ``user``, else ``source``), and their
    # ``note``, added to the alert when the request changes the alert's state.
    source_user: str | None = None
    source_note: str | None = None

    def __post_init__(self) -> None:
        if not self.event_hash:
            self.event_hash = content_hash({"action": self.action, "raw": self.raw})
        # Values read from a sender's labels fit their columns (PostgreSQL refuses longer ones): a long name
        # is shortened, a long identity replaced by its hash, which stays the same for the same key.
        if len(self.dedup_key) > DEDUP_KEY_MAX_LENGTH:
            self.dedup_key = content_hash(self.dedup_key)
        if len(self.alert_type) > NAME_MAX_LENGTH:
            self.alert_type = self.alert_type[: NAME_MAX_LENGTH - 1] + "…"
        if self.service is not None and len(self.service) > NAME_MAX_LENGTH:
            self.service = self.service[: NAME_MAX_LENGTH - 1] + "…"
        # A sender's link or image that is not a web or mail address (javascript:, data:, tcp://) is left out,
        # not shown; the alert is kept.
        if self.links and not all(_safe(link) for link in self.links):
            self.links = [_without_unsafe_image(link) for link in self.links if safe_link(link["href"])]


# A source's clock may run a little ahead of ours; a start further ahead than this is not believed.
CLOCK_SKEW = timedelta(minutes=5)
# Before this, a start is a zero or unset time (Unix 0, a counter) rather than when trouble began.
SOURCE_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def source_time(value: str | datetime | None) -> datetime | None:
    """A source's own time for an alert's start, if it is one to believe: ISO 8601 (no offset reads as UTC),
    from 2000 on (Alertmanager's zero time, 0001-01-01, and Unix 0 mean unset) and not ahead of now by more
    than a clock's skew (a little ahead reads as now). Anything else is None: the alert is kept either way."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    now = utcnow()
    try:
        if value < SOURCE_EPOCH or value > now + CLOCK_SKEW:
            return None
    except OverflowError:
        return None
    return min(value.astimezone(UTC), now)


def _iso_time(value: str) -> bool:
    """Whether ``value`` reads as an ISO 8601 time (``source_time`` may still not believe it)."""
    try:
        datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def _safe(link: dict[str, Any]) -> bool:
    image = link.get("image")
    return safe_link(link["href"]) and (image is None or safe_link(str(image)))


def _without_unsafe_image(link: dict[str, Any]) -> dict[str, Any]:
    image = link.get("image")
    if image is None or safe_link(str(image)):
        return link
    return {name: value for name, value in link.items() if name != "image"}


DEDUP_KEY_MAX_LENGTH = 255  # alerts.dedup_key
NAME_MAX_LENGTH = 200  # alerts.alert_type and alerts.service

# The type each adapter gives an alert whose payload names none (no alertname, type, class or component): it
# says where the alert came from, not what it is, so grouping does not take it for the alert's name.
FALLBACK_TYPES: dict[str, str] = {
    "alertmanager": "alert",
    "grafana": "alert",
    "generic": "generic",
    "pagerduty": "pagerduty",
    "opsgenie": "opsgenie",
}


def content_hash(value: Any) -> str:
    # orjson: canonical (sorted keys, compact) and an order of magnitude faster than json on the hot path.
    try:
        return hashlib.sha256(orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()
    except orjson.JSONEncodeError as exc:
        if "64-bit" not in str(exc):  # the hash wraps the payload: at the edge of orjson's 254 levels
            raise _too_deep() from None
    # An integer beyond 64 bits, kept exact by ``parse_json``, which orjson cannot write.
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def label_hash(labels: dict[str, str]) -> str:
    return content_hash(labels)[:32]


def normalize_severity(value: str | None, default: str = "warning") -> str:
    if not value:
        return default
    return _SEVERITY_WORDS.get(value.strip().lower(), default)


def field_errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        validation_entry(".".join(str(p) for p in error["loc"]) or "body", error) for error in exc.errors()
    ]


# What some senders (PowerShell's Out-File, Windows tools) put before UTF-8 text.
UTF8_BOM = b"\xef\xbb\xbf"


def parse_json(body: bytes, *, replace_nuls: bool = False, refuse_nuls: bool = True) -> Any:
    """A JSON body as the intake takes it: no NUL in any text, and not nested deeper than can be stored.
    A leading UTF-8 byte order mark is ignored, as RFC 8259 allows (orjson refuses it).

    A NUL character is refused (400 naming its field), unless ``replace_nuls``: then it becomes U+FFFD. That
    is for the monitoring tools' routes (Alertmanager, Grafana, and their PagerDuty and Opsgenie notifiers),
    which never resend a refused body fixed: one NUL in one label would lose every alert of the group.

    An alert's own payload is hashed with orjson, which refuses nesting past 254 levels (``content_hash``
    turns that into this 400). What no hash covers is stored by ``db.json_text``, whose fallback writes up
    to about 990 levels, so only a body long enough to nest that deep is probed here: single alerts never
    pay for it.

    ``refuse_nuls=False``: a NUL is kept, for a caller that refuses it itself later (PagerDuty's change
    events, once the key in the body is checked)."""
    text = body[3:] if body[:3] == UTF8_BOM else body
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise _unreadable_json(body, exc) from None
    if len(body) > _SHALLOW_BYTES:
        try:
            orjson.dumps(data)
        except orjson.JSONEncodeError:
            raise _too_deep() from None
    if _TWENTY_DIGITS in body.translate(_DIGITS_AS_ZERO):
        # orjson reads an integer beyond 64 bits as a float: a 30-digit order id would be kept, as evidence,
        # rounded. The standard parser keeps it exact (only bodies with such a number pay for it).
        data = json.loads(text)
    if b"\\u0000" in body:
        if replace_nuls:
            return replace_nul(data)
        if refuse_nuls:
            _refuse_nul(data)
    return data


def _unreadable_json(body: bytes, exc: orjson.JSONDecodeError) -> InvalidPayload:
    """Why orjson could not read ``body``. Its word for bytes that are not UTF-8 ("str is not valid UTF-8:
    surrogates not allowed") names neither the byte nor the cause: say which byte, and that a body starting
    as gzip does is compressed."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as bad:
        message = f"{NOT_UTF8} (byte {bad.start}: 0x{body[bad.start]:02x})"
        if body[:2] == b"\x1f\x8b":
            message += "; it looks gzip-compressed: send it uncompressed"
        return InvalidPayload(message, [{"field": "body", "message": message}])
    return InvalidPayload(f"{NOT_JSON}: {exc}", [{"field": "body", "message": str(exc)}])


def _too_deep() -> InvalidPayload:
    return InvalidPayload(
        f"{TOO_DEEP}: at most 250 levels of objects and lists",
        [{"field": "body", "message": "nested too deeply"}],
    )


# Twenty digits in a row, found by mapping every digit to 0 (four times cheaper than a regex on the hot
# path). Such a run inside a string only costs a second parse.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_TWENTY_DIGITS = b"0" * 20
# Nesting past the ~990 levels storage can write takes at least two bytes a level: a shorter body is safe.
_SHALLOW_BYTES = 1980


def _refuse_nul(data: Any) -> None:
    field = nul_field(data)
    if field is not None:
        raise nul_refusal(field)


def nul_refusal(field: str) -> InvalidPayload:
    """The refusal of a NUL character in ``field`` (a dotted path, as ``jsonbody.nul_field`` names it)."""
    return InvalidPayload(f"{field}: {NUL_MESSAGE}", [{"field": field, "message": NUL_MESSAGE}])


def surrogate_refusal(field: str) -> InvalidPayload:
    """The refusal of a lone UTF-16 surrogate in ``field`` (as ``jsonbody.surrogate_field`` names it)."""
    return InvalidPayload(f"{field}: {SURROGATE_MESSAGE}", [{"field": field, "message": SURROGATE_MESSAGE}])


def validate_payload(adapter: TypeAdapter[Any], data: Any) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        details = field_errors(exc)
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:10])
        raise InvalidPayload(f"malformed payload: {message}", details) from None


def _require_object(data: Any, *, pagerduty: bool = False) -> None:
    """A delivery must be one JSON object (PagerDuty's shapes say so in PagerDuty's words)."""
    if isinstance(data, dict):
        return
    if pagerduty:
        raise InvalidPayload(
            "Event object format is unrecognized", [{"message": "the body must be a JSON object"}]
        )
    raise InvalidPayload("the body must be a JSON object", [{"field": "body", "message": "not an object"}])


_WEBHOOK = TypeAdapter(AlertmanagerWebhook)
_PAGERDUTY = TypeAdapter(PagerDutyEvent)
_PAGERDUTY_V1 = TypeAdapter(PagerDutyV1Event)
_OPSGENIE = TypeAdapter(OpsgenieAlert)
_OPSGENIE_ACTION = TypeAdapter(OpsgenieAction)
_GENERIC = TypeAdapter(GenericAlert)
_GENERIC_LIST = TypeAdapter(list[GenericAlert])


def from_alertmanager(data: Any) -> list[AlertEvent]:
    """Alertmanager v4 webhook, and Grafana's (same shape plus extras)."""
    _require_object(data)
    message: AlertmanagerWebhook = validate_payload(_WEBHOOK, data)
    raw_alerts = data["alerts"]
    context = {k: data.get(k) for k in ("receiver", "groupKey", "externalURL") if data.get(k) is not None}
    if message.truncatedAlerts:
        # Kept with each delivered alert's evidence: the notification it came in was incomplete.
        context["truncatedAlerts"] = message.truncatedAlerts
    events = []
    for alert, raw in zip(message.alerts, raw_alerts, strict=True):
        labels = alert.labels
        annotations: dict[str, Any] = dict(alert.annotations)
        if alert.values and "values" not in annotations:
            annotations["values"] = alert.values  # Grafana: what the query returned when it fired
        summary = (
            annotations.get("summary")
            or annotations.get("description")
            or annotations.get("message")
            or labels.get("alertname")
            or message.title
            or "alert"
        )
        if isinstance(summary, str) and summary.isspace():
            # A blank summary annotation is no summary: the first that says something (rare, so apart).
            summary = next(
                (
                    text
                    for text in (
                        annotations.get("description"),
                        annotations.get("message"),
                        labels.get("alertname"),
                        message.title,
                    )
                    if text and (not isinstance(text, str) or not text.isspace())
                ),
                "alert",
            )
        links = [
            {"href": url, "text": text}
            for url, text in (
                (alert.generatorURL, "source"),
                (alert.silenceURL, "silence"),
                (alert.dashboardURL, "dashboard"),
                (alert.panelURL, "panel"),
                (annotations.get("runbook_url"), "runbook"),
            )
            if url
        ]
        if alert.imageURL:
            links.append({"href": alert.imageURL, "text": "screenshot", "image": alert.imageURL})
        events.append(
            AlertEvent(
                action="trigger" if alert.status == "firing" else "resolve",
                dedup_key=alert.fingerprint or label_hash(labels),
                alert_type=labels.get("alertname", FALLBACK_TYPES["alertmanager"]),
                summary=str(summary)[:1024],
                severity=normalize_severity(labels.get("severity")),
                service=labels.get("service") or labels.get("job"),
                service_is_guess="service" not in labels,
                labels=labels,
                annotations=annotations,
                links=links,
                # Hash only the alert itself: a retry, or a later notification of the same group that
                # repeats this alert unchanged, is the same event.
                raw={"alert": raw, **context},
                event_hash=content_hash({"alert": raw}),
                group_key=message.groupKey,
                truncated_alerts=message.truncatedAlerts or 0,
                started_at=source_time(alert.startsAt),
            )
        )
    return events


def from_pagerduty(data: Any) -> tuple[str, AlertEvent]:
    """Returns the routing key and the event. Ack/resolve need a dedup key; a trigger gets one made up."""
    _require_object(data, pagerduty=True)
    event: PagerDutyEvent = validate_payload(_PAGERDUTY, data)
    if event.event_action == "trigger":
        if event.payload is None:
            raise InvalidPayload(
                "Event object is invalid", [{"field": "payload", "message": "required for a trigger"}]
            )
        dedup_key = event.dedup_key or uuid.uuid4().hex
        payload = event.payload
        labels = {
            name: value
            for name, value in (
                ("source", payload.source),
                ("component", payload.component),
                ("group", payload.group),
                ("class", payload.class_),
                ("severity", payload.severity),
            )
            if value
        }
        annotations: dict[str, Any] = {}
        if payload.custom_details is not None:
            annotations["custom_details"] = payload.custom_details
        if event.client:
            annotations["client"] = event.client
        links = [{"href": link.href, "text": link.text} for link in event.links]
        if event.client_url:
            links.append({"href": event.client_url, "text": event.client or "client"})
        # An image links to its href, or else to itself (a bad href is no reason to lose a good image).
        links.extend(
            {
                "href": image.href if image.href and safe_link(image.href) else image.src,
                "text": image.alt,
                "image": image.src,
            }
            for image in event.images
        )
        alert_type = payload.class_ or payload.component or FALLBACK_TYPES["pagerduty"]
        service = payload.component or payload.group
        # A blank summary (PagerDuty takes it) still pages: it is named by what sent it.
        summary = payload.summary if not payload.summary.isspace() else _unnamed(payload)
        severity = payload.severity
        if payload.timestamp is not None and not _iso_time(payload.timestamp):
            # As PagerDuty refuses it, and as a change event's timestamp is: not dropped without a word.
            raise InvalidPayload(
                "Event object is invalid",
                [
                    {
                        "field": "payload.timestamp",
                        "message": f"{payload.timestamp[:100]!r} is not an ISO 8601 time "
                        "(2026-03-02T09:40:00Z)",
                    }
                ],
            )
        started_at = source_time(payload.timestamp)
    else:
        if not event.dedup_key:
            raise InvalidPayload(
                "Event object is invalid",
                [{"field": "dedup_key", "message": f"required for {event.event_action}"}],
            )
        dedup_key = event.dedup_key
        labels, annotations, links = {}, {}, []
        alert_type, service, summary, severity = "pagerduty", None, "", "info"
        started_at = None
    raw = {k: v for k, v in data.items() if k != "routing_key"}  # never keep the secret
    return event.routing_key, AlertEvent(
        action=event.event_action,
        dedup_key=dedup_key,
        alert_type=alert_type[:200],
        summary=summary,
        severity=severity,
        service=service,
        labels=labels,
        annotations=annotations,
        links=links,
        raw=raw,
        # PagerDuty has no service field: its service is the integration's.
        service_is_guess=True,
        started_at=started_at,
    )


def _unnamed(payload: PagerDutyPayload) -> str:
    what = next(
        (text for text in (payload.class_, payload.component) if text and not text.isspace()), "alert"
    )
    source = payload.source.strip()
    return (
        f"{what} from {source} (sent with a blank summary)"
        if source
        else f"{what} (sent with a blank summary)"
    )


def apply_default_service(events: Sequence[AlertEvent], service: str | None) -> None:
    """An integration's default service (if it has one) for the events that name no service, or only a
    guessed one: the key says which service the source watches better than a scrape job's name does."""
    if service is None:
        return
    for event in events:
        if event.service is None or event.service_is_guess:
            event.service = service
            event.service_is_guess = False


def generic_identity(labels: dict[str, str], alert_type: str | None, summary: str) -> dict[str, str]:
    """What a plain JSON alert sent without a dedup key is identified by (hashed): its labels (the service
    among them), else its summary, and its type as ``alertname`` unless a label names it. Without the type,
    a host's DiskHigh warning updated and then resolved its DBDown page, as one alert (Alertmanager's
    fingerprint has the alertname). A change here gives open alerts new keys: they need a migration (0037)."""
    identity = labels or {"summary": summary}
    if alert_type and "alertname" not in labels:
        identity = {**identity, "alertname": alert_type}
    return identity


def generic_event(alert: GenericAlert, raw: dict[str, Any]) -> AlertEvent:
    action: Action = {"firing": "trigger", "acknowledged": "acknowledge", "resolved": "resolve"}[alert.status]  # type: ignore[assignment]
    labels = dict(alert.labels)
    if alert.service and "service" not in labels:
        labels["service"] = alert.service
    dedup_key = alert.dedup_key or label_hash(generic_identity(labels, alert.type, alert.summary))
    annotations = dict(alert.annotations)
    if alert.details is not None:
        annotations["details"] = alert.details
    return AlertEvent(
        action=action,
        dedup_key=dedup_key,
        alert_type=alert.type or labels.get("alertname") or FALLBACK_TYPES["generic"],
        summary=alert.summary,
        severity=alert.severity,
        service=alert.service or labels.get("service"),
        labels=labels,
        annotations=annotations,
        links=[link.model_dump(exclude_none=True) for link in alert.links],
        raw=raw,
        started_at=source_time(alert.timestamp),
    )


def from_pagerduty_v1(data: Any) -> tuple[str, AlertEvent]:
    """Events API v1: the service key and the event, read as the v2 event it maps onto (``incident_key`` is
    the dedup key, ``description`` the summary, ``details`` the custom details, ``contexts`` the links and
    images). v1 has no severity: a trigger is an ``error``, as an email alert with no severity word is."""
    _require_object(data, pagerduty=True)
    event: PagerDutyV1Event = validate_payload(_PAGERDUTY_V1, data)
    v2: dict[str, Any] = {
        "routing_key": event.service_key,
        "event_action": event.event_type,
        "dedup_key": event.incident_key,
        "client": event.client,
        "client_url": event.client_url,
        "links": [{"href": c.href, "text": c.text} for c in event.contexts if c.type == "link" and c.href],
        "images": [
            {"src": c.src, "href": c.href, "alt": c.alt}
            for c in event.contexts
            if c.type == "image" and c.src
        ],
    }
    if event.event_type == "trigger":
        if not event.description or not event.description.strip():
            raise InvalidPayload(
                "Event object is invalid", [{"field": "description", "message": "required for a trigger"}]
            )
        v2["payload"] = {
            "summary": event.description,
            "source": (event.client or "Events API v1")[:255],
            "severity": "error",
            "custom_details": event.details,
        }
    elif not event.incident_key:
        required = {"field": "incident_key", "message": f"required for {event.event_type}"}
        raise InvalidPayload("Event object is invalid", [required])
    routing_key, alert = from_pagerduty(v2)
    alert.raw = {k: v for k, v in data.items() if k != "service_key"}  # never keep the secret
    return routing_key, alert


# Opsgenie's priorities onto our severities (P3 is Opsgenie's default).
_OPSGENIE_SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info", "P5": "info"}


def opsgenie_dedup_key(alias: str) -> str:
    """The alert's dedup key for an Opsgenie alias: the alias itself, or a digest of one over our limit."""
    if len(alias) <= 255:
        return alias
    return "opsgenie:" + hashlib.sha256(alias.encode()).hexdigest()


def from_opsgenie(data: Any) -> AlertEvent:
    """An Opsgenie alert to create (``POST /v2/alerts``). The alias is the dedup key, as in Opsgenie; without
    one, every request is a new alert. Details (string pairs) and the entity become labels; tags, the
    description and the note are kept as annotations. Details are the labels Alertmanager's
    ``opsgenie_configs`` sends, so they name the service as an Alertmanager alert's labels do: a ``service``
    detail, else a ``job`` (a guess an integration's default service replaces)."""
    _require_object(data)
    alert: OpsgenieAlert = validate_payload(_OPSGENIE, data)
    labels = _opsgenie_labels(alert.details)
    if alert.entity:
        labels["entity"] = alert.entity[:500]
    annotations: dict[str, Any] = {"tags": list(dict.fromkeys(alert.tags))} if alert.tags else {}
    for name in ("description", "note", "source", "user"):
        value = getattr(alert, name)
        if value:
            annotations[name] = value
    return AlertEvent(
        action="trigger",
        dedup_key=opsgenie_dedup_key(alert.alias) if alert.alias else uuid.uuid4().hex,
        alert_type=alert.details.get("alertname", FALLBACK_TYPES["opsgenie"])[:200],
        summary=alert.message,
        severity=_OPSGENIE_SEVERITY[alert.priority],
        service=labels.get("service") or labels.get("job") or None,
        labels=labels,
        annotations=annotations,
        links=[],
        raw=data,
        service_is_guess="service" not in labels or not labels["service"],
    )


def opsgenie_action(action: Action, alias: str, body: bytes) -> AlertEvent:
    """Close (resolve) or acknowledge the alert of an alias; the body (user, source, note) is optional. The
    note is added to the alert as the notes request adds one, and the acknowledgement names the user."""
    data = parse_json(body, replace_nuls=True) if body.strip() else {}
    _require_object(data)
    taken: OpsgenieAction = validate_payload(_OPSGENIE_ACTION, data)
    annotations = {name: value for name in ("user", "source", "note") if (value := getattr(taken, name))}
    return AlertEvent(
        action=action,
        dedup_key=opsgenie_dedup_key(alias),
        alert_type="opsgenie",
        summary="",
        severity="info",
        service=None,
        labels={},
        annotations=annotations,
        links=[],
        raw=data,
        service_is_guess=True,
        source_user=(taken.user or taken.source or "").strip() or None,
        source_note=taken.note.strip() if taken.note and taken.note.strip() else None,
    )


@dataclass(frozen=True)
class SourceChange:
    """What a source changes on its open alert besides its state, with no new occurrence (Opsgenie's update
    requests): the summary, annotations, the severity, or a note to add."""

    summary: str | None = None
    annotations: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None
    note: str | None = None
    note_author: str | None = None
    # Opsgenie's snooze and unacknowledge: state changes a source makes for a person, by its alias.
    snooze_until: datetime | None = None
    unacknowledge: bool = False
    # Opsgenie's tags (kept in the ``tags`` annotation) and details (labels), added or removed.
    add_tags: list[str] = field(default_factory=list)
    remove_tags: list[str] = field(default_factory=list)
    set_labels: dict[str, str] = field(default_factory=dict)
    remove_labels: list[str] = field(default_factory=list)


OpsgenieUpdate = Literal[
    "message", "description", "priority", "notes", "snooze", "unacknowledge", "tags", "details"
]
_OPSGENIE_UPDATES: dict[str, TypeAdapter[Any]] = {
    "message": TypeAdapter(OpsgenieMessage),
    "description": TypeAdapter(OpsgenieDescription),
    "priority": TypeAdapter(OpsgeniePriority),
    "notes": TypeAdapter(OpsgenieNote),
    "snooze": TypeAdapter(OpsgenieSnooze),
    "unacknowledge": _OPSGENIE_ACTION,
    "tags": TypeAdapter(OpsgenieTags),
    "details": TypeAdapter(OpsgenieDetails),
}
# A detail becomes a label as at creation: names and values cut to the label limits.
_LABEL_NAME_MAX, _LABEL_VALUE_MAX = 100, 500


def _opsgenie_labels(details: dict[str, str]) -> dict[str, str]:
    return {name[:_LABEL_NAME_MAX]: value[:_LABEL_VALUE_MAX] for name, value in list(details.items())[:100]}


def opsgenie_author(user: str | None, source: str | None) -> str | None:
    """Who a request's ``user`` (else ``source``) query parameter names, as one visible line (as the
    bodies' ``OpsgenieName``); None when neither names anyone."""
    return one_line(user or "") or one_line(source or "") or None


def opsgenie_removal(
    kind: Literal["tags", "details"], names: str, author: str | None, note: str | None
) -> SourceChange:
    """``DELETE /v2/alerts/{alias}/tags?tags=a,b`` or ``.../details?keys=a,b``: the comma-separated names
    taken off the alert (a note by ``author``, from ``opsgenie_author``, says why, if given)."""
    taken = [name.strip() for name in names.split(",") if name.strip()]
    if not taken:
        field_name = "tags" if kind == "tags" else "keys"
        raise InvalidPayload(f"{field_name}: name at least one", [{"field": field_name, "message": "empty"}])
    kept_note = note.strip() if note and note.strip() else None
    if kind == "tags":
        return SourceChange(remove_tags=taken, note=kept_note, note_author=author)
    return SourceChange(remove_labels=taken, note=kept_note, note_author=author)


def opsgenie_change(update: OpsgenieUpdate, body: bytes) -> SourceChange:
    """The change of one Opsgenie update request (``PUT .../message``, ``.../description``, ``.../priority``,
    ``POST .../notes``, ``.../snooze``, ``.../unacknowledge``)."""
    data = parse_json(body, replace_nuls=True) if body.strip() or update != "unacknowledge" else {}
    _require_object(data)
    taken = validate_payload(_OPSGENIE_UPDATES[update], data)
    if isinstance(taken, OpsgenieAction):  # snooze, tags and details (subclasses) and unacknowledge
        author = taken.user or taken.source
        note = taken.note.strip() if taken.note and taken.note.strip() else None
        if isinstance(taken, OpsgenieSnooze):
            return SourceChange(snooze_until=taken.endTime, note=note, note_author=author)
        if isinstance(taken, OpsgenieTags):
            return SourceChange(add_tags=taken.tags, note=note, note_author=author)
        if isinstance(taken, OpsgenieDetails):
            return SourceChange(set_labels=_opsgenie_labels(taken.details), note=note, note_author=author)
        return SourceChange(unacknowledge=True, note=note, note_author=author)
    if isinstance(taken, OpsgenieMessage):
        return SourceChange(summary=taken.message)
    if isinstance(taken, OpsgenieDescription):
        return SourceChange(annotations={"description": taken.description})
    if isinstance(taken, OpsgeniePriority):
        return SourceChange(severity=_OPSGENIE_SEVERITY[taken.priority])
    assert isinstance(taken, OpsgenieNote)
    return SourceChange(note=taken.note.strip(), note_author=taken.user or taken.source)


def from_generic(data: Any) -> list[AlertEvent]:
    if isinstance(data, list):
        if not data:
            raise InvalidPayload("the list is empty", [{"field": "body", "message": "no alerts"}])
        # A batch is accepted whole or not at all: one bad alert rejects the request.
        alerts = validate_payload(_GENERIC_LIST, data)
        return [generic_event(alert, raw) for alert, raw in zip(alerts, data, strict=True)]
    if not isinstance(data, dict):
        raise InvalidPayload(
            "the body must be an alert object or a list of them", [{"field": "body", "message": "wrong type"}]
        )
    return [generic_event(validate_payload(_GENERIC, data), data)]


# MIME, for mail and multipart forms: the stdlib's parser, with limits. Without them a body of a few hundred
# kilobytes holds a hundred thousand parts (seconds of CPU to build) or parts nested thousands deep (the
# parser's recursion overflows the stack).

MIME_MAX_PARTS = 1000  # a mail message's parts, the message itself included
MIME_MAX_DEPTH = 20  # the message itself is 1; an attached message, or a multipart in a multipart, one more


class MimeLimit(Exception):
    """A MIME body over a limit of ``parse_mime``: ``problem`` says which, in words; ``too_many_parts``
    tells the parts' limit from the depth's."""

    def __init__(self, problem: str, limit: int, *, too_many_parts: bool) -> None:
        super().__init__(problem)
        self.problem = problem
        self.limit = limit
        self.too_many_parts = too_many_parts


class _LimitedPart(EmailMessage):
    """A part of a message being parsed, that knows how deep it is: the parser attaches each part to its
    container before it reads the part's contents, so a part too deep is refused before any of its own."""

    depth = 1
    max_depth = MIME_MAX_DEPTH

    def attach(self, payload: Any) -> None:
        if isinstance(payload, _LimitedPart):
            payload.depth = self.depth + 1
            payload.max_depth = self.max_depth
            if payload.depth > self.max_depth:
                raise MimeLimit(
                    f"parts nested over {self.max_depth} deep", self.max_depth, too_many_parts=False
                )
        super().attach(payload)


def parse_mime(
    raw: bytes, policy: email.policy.EmailPolicy[Any], *, max_parts: int, max_depth: int = MIME_MAX_DEPTH
) -> EmailMessage:
    """``email.message_from_bytes(raw, policy=policy)``, refusing (``MimeLimit``) at the first part over
    ``max_parts`` (the message itself is one; nested parts count too) or nested deeper than ``max_depth``,
    before it reads on. The parser makes every part with the factory and attaches it to its container."""
    made = 0

    def factory(policy: Any = email.policy.compat32) -> _LimitedPart:
        nonlocal made
        made += 1
        if made > max_parts:
            raise MimeLimit(f"over {max_parts} parts", max_parts, too_many_parts=True)
        part = _LimitedPart(policy=policy)
        part.max_depth = max_depth
        return part

    parser = FeedParser(factory, policy=policy)
    made = 0  # the parser made one to try the factory
    parser.feed(raw.decode("ascii", "surrogateescape"))  # as BytesParser reads bytes
    message = parser.close()
    assert isinstance(message, EmailMessage)
    return message


# Alerts by email (the SMTP server is ``warroom.alerts.mail``): one message, one event.

EMAIL_MAX_BODY_CHARS = 10_000

# Words that lead a subject: replies and forwards, then the state a sender puts first.
_REPLY = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg)\s*:\s*)+", re.IGNORECASE)
_RECOVERED = r"resolved|recovery|recovered|ok|cleared|up"
_FIRING = r"problem|firing(?::\d+)?|alert(?:ing)?|triggered|down|critical|warning|error|unknown"
# Zabbix 5 and later put how long the problem lasted between the state and the colon: "Resolved in 1h 2m 3s:
# …", and "Updated problem in 5m 0s: …" for an update ({EVENT.DURATION}, {EVENT.AGE}). Without this the
# recovery named a different alert ("in 5m 0s: …") and never resolved the problem.
_ZABBIX_DURATION = r"\d+(?:ms|[ywdhms])(?:\s+\d+(?:ms|[ywdhms]))*"
_LEADING_STATE = re.compile(
    rf"^\s*(?:\*\*\s*)?[\[(]?\s*(?P<state>{_RECOVERED}|updated\s+problem|{_FIRING})\b"
    rf"(?:\s+in\s+{_ZABBIX_DURATION}(?=\s*:))?\s*[\])]?\s*(?::|-|(?=\S)|$)\s*",
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
    return storable_text(text)


def subject_state(subject: str) -> tuple[str, str | None]:
    """The subject without replies' prefixes and state words (what identifies the alert), and the state word
    that led it, lowercased and with its spaces made one (None: none did)."""
    rest = _REPLY.sub("", subject)
    state = None
    leading = _LEADING_STATE.match(rest)
    if leading:
        state = " ".join(leading.group("state").lower().split())
        rest = rest[leading.end() :]
    rest = _TRAILING_STATE.sub("", rest)
    rest = _TRAILING_STARS.sub("", rest)
    return " ".join(rest.split()), state


def _name_in_body(body: str) -> str:
    """The first line of a message's body as an alert's name, unless it too is only a state word."""
    first = next((line.strip() for line in body.splitlines() if line.strip()), "")
    name, state = subject_state(first)
    return "" if not name and state is not None else first[:200]


def _automatic_reply(header: Callable[[str], str], message: EmailMessage) -> str | None:
    """Why a message is an out-of-office reply, a bounce or a read receipt (None: it is not one). The intake
    address can end up on a list or in a Reply-To, and such replies would each open an alert. Monitoring
    tools mark their mail ``Auto-Submitted: auto-generated``, which is an alert, so only replies count."""
    auto_submitted = header("auto-submitted").lower()
    if auto_submitted.startswith(("auto-replied", "auto-notified")):
        return f"Auto-Submitted: {auto_submitted.split(';')[0]}"
    if header("precedence").lower() == "auto_reply":
        return "Precedence: auto_reply"
    for name in ("x-autoreply", "x-autorespond"):
        if header(name) and header(name).lower() not in ("no", "false", "0"):
            return f"{name.title()}: {header(name)}"
    if message.get_content_type() == "multipart/report":
        report = str(message.get_param("report-type") or "").lower()
        if report in ("delivery-status", "disposition-notification"):
            return "a bounce" if report == "delivery-status" else "a read receipt"
    return None


def from_email(
    raw: bytes, rules: Sequence[EmailRule] = (), keys: Sequence[str] = (), envelope_sender: str = ""
) -> AlertEvent:
    """The alert event of one message, as received (RFC 5322 bytes), read by the first of ``rules``
    (``automation.email_rules``) that matches it, else by the built-in state words.

    ``keys`` (the integration keys it was sent to) are taken out of the message as it is read, before
    anything is made of it: the address is an email integration's only secret, and MTAs write it into
    headers (``Received: … for <KEY@…>``, ``Delivered-To``, ``X-Original-To``), as ``To`` holds it and a
    forwarded message's body may. Everything kept (raw headers and body, labels, summary, dedup key) says
    ``[key]`` instead. ``envelope_sender`` (SMTP's ``MAIL FROM``) is the sender of a message without a
    ``From:`` header (cron's and scripts' mail often has none), so that two hosts' mails stay two alerts."""
    try:
        message = parse_mime(raw, email.policy.default, max_parts=MIME_MAX_PARTS)
    except MimeLimit as exc:
        raise InvalidPayload(
            f"the message cannot be read: it has {exc.problem}",
            [{"field": "message", "message": exc.problem, "limit": exc.limit}],
        ) from None
    except Exception as exc:  # the parser is lenient; this is for what it cannot take at all
        raise InvalidPayload(
            f"the message cannot be read: {exc}", [{"field": "message", "message": str(exc)}]
        ) from None
    assert isinstance(message, EmailMessage)
    try:
        headers = [
            (scrub_text(name, keys), scrub_text(_clean(str(value)), keys)) for name, value in message.items()
        ]
        body = scrub_text(_clean(_body_text(message)), keys)
    except Exception as exc:  # a header the policy cannot decode
        problem = [{"field": "headers", "message": str(exc)}]
        raise InvalidPayload(f"a header cannot be read: {exc}", problem) from None

    def header(name: str) -> str:
        return next((value for key, value in headers if key.lower() == name), "").strip()

    automatic = _automatic_reply(header, message)
    if automatic is not None:
        raise InvalidPayload(
            f"an automatic reply is not an alert ({automatic})", [{"field": "headers", "message": automatic}]
        )
    subject = " ".join(header("subject").split())
    senders = getaddresses([value for key, value in headers if key.lower() == "from"])
    sender = next((address.lower() for _, address in senders if address), "")
    if not sender:
        sender = scrub_text(_clean(envelope_sender.strip().strip("<>").strip()), keys).lower()[:200]
    read = next(((rule, found) for rule in rules if (found := rule.read(sender, subject)) is not None), None)
    rule_labels: dict[str, str] = {}
    rule_severity = None
    if read is not None:
        rule, (groups, state) = read
        identity = groups.pop("alert", rule.name)
        rule_labels = {name: value[:200] for name, value in groups.items()} | {"email_rule": rule.name}
        recovered = rule.resolves(state)
        rule_severity = rule.severity_of(state)
    else:
        identity, state = subject_state(subject)
        recovered = state is not None and re.fullmatch(_RECOVERED, state, re.IGNORECASE) is not None
    named_by_subject = bool(identity)
    if not identity and state is not None:
        # A subject that is only a state word ("RESOLVED", "[FIRING]") names no alert: the body's first line
        # may; else the alert can only be the one the sender's dedup key names. Never one called "RESOLVED".
        identity = _name_in_body(body) or header("x-warroom-dedup-key")[:200]
        if not identity:
            what = "resolve" if recovered else "open"
            raise InvalidPayload(
                f"the subject {subject!r} is only a state word and the body names nothing: no alert to "
                f"{what}; name the alert in the subject, after the state word",
                [{"field": "subject", "message": "only a state word"}],
            )
    elif not identity:
        identity = subject or body.split("\n", 1)[0][:200]
        if not identity and not header("x-warroom-dedup-key"):
            # A blank message names no alert: each sender's would open one called "(no subject)".
            raise InvalidPayload(
                "the message has no subject and no body: no alert to open; name the alert in the subject",
                [{"field": "subject", "message": "blank, and so is the body"}],
            )
        identity = identity or "(no subject)"  # the sender's dedup key names the alert

    action: Action = "trigger"
    status_header = header("x-warroom-status").lower()
    if status_header:
        if status_header not in _STATUS_HEADER:
            raise InvalidPayload(
                f"X-Warroom-Status {status_header!r} is not one of firing, acknowledged, resolved",
                [{"field": "X-Warroom-Status", "message": "unknown status", "allowed": list(_STATUS_HEADER)}],
            )
        action = _STATUS_HEADER[status_header]  # type: ignore[assignment]
    elif recovered:
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
    elif rule_severity is not None:
        severity = rule_severity
    else:
        word = _SEVERITY_IN_SUBJECT.search(subject)
        severity = normalize_severity(word.group(1) if word else None, default="error")
        if action == "resolve" and severity == "info":
            severity = "error"  # "OK" in a recovery names the state, not a severity

    # A rule's groups are labels and part of the identity; they cannot replace the name or the sender.
    labels = rule_labels | {"alertname": identity[:200], "from": sender}
    dedup_header = header("x-warroom-dedup-key")
    dedup_key = dedup_header or "email:" + label_hash(labels)  # a longer one is hashed (AlertEvent)
    annotations: dict[str, Any] = {"subject": subject, "description": body[:EMAIL_MAX_BODY_CHARS]}
    message_id = header("message-id")
    if message_id:
        annotations["message_id"] = message_id
    raw_view = {
        "headers": [list(pair) for pair in headers[:100]],
        "body": body[:EMAIL_MAX_BODY_CHARS],
    }
    return AlertEvent(
        action=action,
        dedup_key=dedup_key,
        alert_type="email",
        summary=(subject if named_by_subject else f"{subject}: {identity}" if subject else identity)[:1000],
        severity=severity,
        service=None,
        labels=labels,
        annotations=annotations,
        links=[],
        raw=raw_view,
    )


PAYLOAD_SOURCES = ("alertmanager", "grafana", "pagerduty", "opsgenie", "generic", "email", "webhook")


# A tool's own webhook, read by a format of the org file (``automation.webhook_formats``).

WEBHOOK_MAX_ALERTS = 1000


def _clip(text: str, limit: int) -> str:
    """Rendered text cut to the alert field's length: a tool's long message is shortened, not refused."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _webhook_items(data: Any, webhook_format: WebhookFormat) -> list[Any]:
    if webhook_format.each is None:
        return [data]
    renderer = TemplateRenderer({"payload": data, "item": data}, "")
    found = renderer.value("each", webhook_format.each)
    if renderer.errors:
        raise InvalidPayload(f"each: {renderer.errors[0]['message']}", renderer.errors)
    if not isinstance(found, list):
        message = f"each: {webhook_format.each!r} is not a list in this payload"
        raise InvalidPayload(message, [{"field": "each", "message": message}])
    if len(found) > WEBHOOK_MAX_ALERTS:
        message = f"each: {len(found)} items, over the limit of {WEBHOOK_MAX_ALERTS} per delivery"
        raise InvalidPayload(message, [{"field": "each", "message": message}])
    return found


def _identity_parts(renderer: TemplateRenderer, webhook_format: WebhookFormat) -> tuple[Any, ...]:
    """What makes an alert's identity and name, as rendered (before any default stands in for it)."""
    return (
        {
            name: _clip(text, 1000)
            for name, source in webhook_format.labels.items()
            if (text := renderer.text(f"labels.{name}", source))
        },
        _clip(renderer.text("alert", webhook_format.alert), 200),
        renderer.text("dedup_key", webhook_format.dedup_key),
        _clip(renderer.text("summary", webhook_format.summary), 1024),
        _clip(renderer.text("service", webhook_format.service), 200),
    )


def _blank_identity(webhook_format: WebhookFormat) -> tuple[Any, ...] | None:
    """The identity the format renders for an empty payload (``gcp-`` and no name), or None when its
    identity does not read the payload at all (a fixed name: every delivery is that one alert)."""
    sources = [
        webhook_format.alert,
        webhook_format.dedup_key,
        webhook_format.summary,
        webhook_format.service,
        *webhook_format.labels.values(),
    ]
    if not any(source and ("payload" in source or "item" in source) for source in sources):
        return None
    renderer = TemplateRenderer({"payload": {}, "item": {}}, "")
    blank = _identity_parts(renderer, webhook_format)
    return None if renderer.errors else blank


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), type(value).__name__
    )


def from_webhook(data: Any, webhook_format: WebhookFormat) -> list[AlertEvent]:
    """The alerts a format reads in one delivery of a tool's own JSON: one per element of ``each`` (else one),
    less those ``skip`` leaves out. A template that fails on the payload refuses the delivery whole, naming
    the field (and the item); nothing is stored. So does a body that is not a JSON object (without ``each``),
    and an item of which the format reads nothing: its name, dedup key, summary, service and labels render as
    for an empty payload (``{}`` to a format whose dedup key is ``gcp-{{ payload.incident.incident_id }}``).
    """
    if webhook_format.each is None and not isinstance(data, dict):
        message = f"the {webhook_format.name} format reads a JSON object; this body is {_kind(data)}"
        raise InvalidPayload(message, [{"field": "body", "message": f"{_kind(data)}, not an object"}])
    items = _webhook_items(data, webhook_format)
    blank = _blank_identity(webhook_format) if items else None
    read: list[tuple[dict[str, Any], Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        renderer = TemplateRenderer(
            {"payload": data, "item": item}, f"[{index}]." if webhook_format.each is not None else ""
        )
        if renderer.value("skip", webhook_format.skip):
            continue
        identity = _identity_parts(renderer, webhook_format)
        labels, alert_text, dedup_key, summary, service = identity
        if blank is not None and identity == blank and not renderer.errors:
            where = f"[{index}]" if webhook_format.each is not None else "body"
            errors.append(
                {
                    "field": where,
                    "message": "none of the fields the format reads is in it (its alert's name, dedup key, "
                    "summary, service and labels render as for an empty payload)",
                }
            )
            continue
        labels = dict(labels)
        # The alert's name: its template, else an alertname label the format renders, else the format's name.
        alert_name = alert_text or labels.get("alertname", "")[:200] or webhook_format.name
        labels.update(alertname=alert_name, webhook_format=webhook_format.name)
        word = renderer.text("severity", webhook_format.severity).lower()
        mapped = {key.lower(): value for key, value in webhook_format.severity_map.items()}.get(word)
        status = (
            "resolved"
            if renderer.value("resolve", webhook_format.resolve)
            else "acknowledged"
            if renderer.value("acknowledge", webhook_format.acknowledge)
            else "firing"
        )
        fields: dict[str, Any] = {
            "summary": summary or alert_name,
            "status": status,
            "severity": mapped or normalize_severity(word, webhook_format.default_severity),
            # The tool's own id, hashed when longer than a dedup key may be.
            "dedup_key": (dedup_key if len(dedup_key) <= DEDUP_KEY_MAX_LENGTH else content_hash(dedup_key))
            or None,
            # Made one visible line rather than refused: the text is the tool's (a monitor named
            # "shop\there"), which it cannot change, and a refusal loses the alert (tools do not resend).
            "type": _visible(alert_name) or webhook_format.name,
            "service": _visible(service) or None,
            "labels": labels,
            "annotations": {
                name: text
                for name, source in webhook_format.annotations.items()
                if (text := renderer.text(f"annotations.{name}", source))
            },
            "links": [
                {
                    "href": _clip(href, 2000),
                    "text": _clip(renderer.text(f"links[{i}].text", link.text), 500) or None,
                }
                for i, link in enumerate(webhook_format.links)
                # What the tool watches (tcp://db:5432, a bare host) is no link to follow: left out, and the
                # alert kept (a refusal would lose it: tools do not resend on a 4xx).
                if (href := renderer.text(f"links[{i}].href", link.href)) and safe_link(href)
            ],
        }
        errors.extend(renderer.errors)
        read.append((fields, item))
    if errors:
        message = "; ".join(f"{d['field']}: {d['message']}" for d in errors[:10])
        raise InvalidPayload(f"the {webhook_format.name} format cannot read this payload: {message}", errors)
    return [generic_event(validate_payload(_GENERIC, fields), _evidence(item)) for fields, item in read]


def _visible(text: str) -> str:
    """A rendered name as one visible line: as a plain JSON alert's would be taken (trimmed), else with its
    line breaks and hidden characters (tabs, escapes, direction marks) made spaces. Empty when blank."""
    try:
        return visible_line(text)
    except ValueError:
        return one_line(text)


def _evidence(item: Any) -> dict[str, Any]:
    # The raw payload kept with the alert is an object; an element of another kind is wrapped.
    return item if isinstance(item, dict) else {"item": item}


FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MULTIPART_CONTENT_TYPE = "multipart/form-data"
_FORM_MAX_FIELDS = 1000


def _unreadable_form(reason: object) -> InvalidPayload:
    message = f"the body is not a readable form: {reason}"
    return InvalidPayload(message, [{"field": "body", "message": message}])


def _form_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """A form's fields as an object: each a string, or a list when the field repeats."""
    fields: dict[str, list[str]] = {}
    for name, value in pairs:
        fields.setdefault(name, []).append(value)
    return {name: values[0] if len(values) == 1 else values for name, values in fields.items()}


def _multipart_pairs(body: bytes, content_type: str) -> list[tuple[str, str]]:
    # The stdlib's MIME parser reads form-data as it reads mail: one part per field, named by its
    # Content-Disposition. Files are read as text like any other field.
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    # Too many fields are refused before any part is made: each field's part starts with the boundary, so the
    # boundary's count in the raw bytes is at least the fields' (plus the closing one).
    boundary = BytesParser(policy=email.policy.HTTP).parsebytes(head, headersonly=True).get_boundary()
    if boundary and body.count(b"--" + boundary.encode("utf-8", "surrogateescape")) > _FORM_MAX_FIELDS + 1:
        raise _unreadable_form(f"over {_FORM_MAX_FIELDS} fields")
    try:
        # The form itself is a part too; parts nested in fields count against the same limit.
        message = parse_mime(head + body, email.policy.HTTP, max_parts=_FORM_MAX_FIELDS + 1)
    except MimeLimit as exc:
        raise _unreadable_form(
            f"over {_FORM_MAX_FIELDS} fields" if exc.too_many_parts else exc.problem
        ) from None
    if not message.is_multipart() or message.defects:
        raise _unreadable_form(
            _form_defect(message.defects[0], message.get_boundary()) if message.defects else "no parts"
        )
    pairs = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise _unreadable_form("a part without a name")
        payload = part.get_payload(decode=True)
        pairs.append((name, _text(payload, part.get_content_charset()) if isinstance(payload, bytes) else ""))
    return pairs


def _form_defect(defect: email.errors.MessageDefect, boundary: str | None) -> str:
    """Why the MIME parser could not split a form, in words (its defects mostly have no message)."""
    if isinstance(defect, email.errors.NoBoundaryInMultipartDefect) or (
        isinstance(defect, email.errors.StartBoundaryNotFoundDefect) and not boundary
    ):
        return "the Content-Type names no boundary (multipart/form-data; boundary=...)"
    if isinstance(defect, email.errors.StartBoundaryNotFoundDefect):
        return f"the boundary of the Content-Type (--{boundary}) is not in the body"
    if isinstance(defect, email.errors.CloseBoundaryNotFoundDefect):
        return f"the closing boundary (--{boundary}--) is missing"
    return str(defect) or (defect.__doc__ or type(defect).__name__).strip().rstrip(".")


def _text(payload: bytes, charset: str | None) -> str:
    try:
        return payload.decode(charset or "utf-8", "replace")
    except LookupError:  # a charset Python does not know
        return payload.decode("utf-8", "replace")


def parse_webhook_body(body: bytes, content_type: str | None) -> Any:
    """A tool's webhook body: JSON, or a form read as an object of its fields, each a string (a list when the
    field repeats): ``application/x-www-form-urlencoded``, as ``curl -d`` and older tools post it, or
    ``multipart/form-data`` (Uptime Kuma's "form-data" preset puts its JSON in the field ``data``)."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type == MULTIPART_CONTENT_TYPE:
        assert content_type is not None
        fields = _form_fields(_multipart_pairs(body, content_type))
    elif media_type != FORM_CONTENT_TYPE or body.removeprefix(UTF8_BOM).lstrip()[:1] in (b"{", b"["):
        # A form never starts with a brace: that is JSON posted with curl -d's default content type.
        return parse_json(body)
    else:
        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=_FORM_MAX_FIELDS)
        except (UnicodeDecodeError, ValueError) as exc:
            raise _unreadable_form(exc) from None
        fields = _form_fields(pairs)
    _refuse_nul(fields)
    return fields


def webhook_format_named(automation: AutomationConfig, name: str) -> WebhookFormat:
    found = automation.webhook_format(name)
    if found is None:
        raise NotFound(f"no webhook format named {name!r} in the org file (automation.webhook_formats)")
    return found


# The header fields a mail message starts with (RFC 5322 and what MTAs add in front), to tell a saved
# ``.eml`` from a JSON payload.
_MAIL_HEADER = re.compile(
    rb"^(?:from|to|subject|date|received|return-path|delivered-to|message-id|mime-version|x-[a-z0-9-]+)"
    rb"[ \t]*:",
    re.IGNORECASE | re.MULTILINE,
)


# Fields of a plain JSON alert that Opsgenie's create-alert request does not have (summary, severity, …).
_GENERIC_ONLY = frozenset(GenericAlert.model_fields) - frozenset(OpsgenieAlert.model_fields)


def detected_source(data: Any) -> str:
    """The intake shape a payload has, told apart by its fields. An Opsgenie create-alert request has a
    ``message``, which a plain JSON alert does not take; one that also has a plain alert's own fields (a
    ``summary``, a ``severity``) is a plain alert gone wrong, and is refused as one."""
    if isinstance(data, dict) and isinstance(data.get("alerts"), list):
        return "alertmanager"
    if isinstance(data, dict) and "event_action" in data:
        return "pagerduty"
    if isinstance(data, dict) and "message" in data and _GENERIC_ONLY.isdisjoint(data):
        return "opsgenie"
    return "generic"


def looks_like_mail(body: bytes) -> bool:
    """Whether a body is a mail message rather than JSON: its header block (up to the first empty line)
    holds a header field that messages carry."""
    head = body.lstrip()[:65_536].split(b"\n\n", 1)[0].split(b"\r\n\r\n", 1)[0]
    return not head.startswith((b"{", b"[")) and _MAIL_HEADER.search(head) is not None


def delivery_events(
    body: bytes,
    source: str = "auto",
    automation: AutomationConfig | None = None,
    webhook_format: str | None = None,
    content_type: str | None = None,
) -> tuple[str, list[AlertEvent]]:
    """The source (told by the payload's fields when ``auto``) and the events of one raw delivery: a JSON
    payload as a source would POST it, a mail message as an email integration would receive it (read with
    the org file's email rules), or a tool's own JSON (or form, by ``content_type``) read by the org file's
    ``webhook_format``."""
    automation = automation or AutomationConfig()
    if webhook_format is not None or source == "webhook":
        if webhook_format is None:
            raise InvalidPayload("a webhook delivery is read by a format: name one", [])
        if source not in ("auto", "webhook"):
            raise InvalidPayload(f"a webhook format reads webhook deliveries, not {source}", [])
        read = webhook_format_named(automation, webhook_format)
        return "webhook", from_webhook(parse_webhook_body(body, content_type), read)
    if source == "email" or (source == "auto" and looks_like_mail(body)):
        return "email", [from_email(body, automation.email_rules)]
    data = parse_json(body)
    kind = detected_source(data) if source == "auto" else source
    return kind, events_for(kind, data)


def events_for(source: str, data: Any) -> list[AlertEvent]:
    """The events of one JSON delivery in the shape of ``source`` (one of ``PAYLOAD_SOURCES`` but email)."""
    if source in ("alertmanager", "grafana"):
        return from_alertmanager(data)
    if source == "pagerduty":
        return [from_pagerduty(data)[1]]
    if source == "opsgenie":
        return [from_opsgenie(data)]  # the body of POST /v2/alerts
    if source == "generic":
        return from_generic(data)
    raise InvalidPayload(f"unknown source {source!r}; one of {', '.join(PAYLOAD_SOURCES)}", [])
