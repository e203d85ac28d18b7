"""The ``notification_channels`` section of the org file: where messages go and how they look.

Secrets are not written in the file: any string setting may be ``${ENV_VAR}``, resolved by the worker
when it delivers (so ``warroom config check`` passes on a laptop without the production secrets).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

import email_validator
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from warroom.fields import not_in_file

if TYPE_CHECKING:
    from warroom.orgconfig import OrgConfig

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

SmtpSecurity = Literal["starttls", "tls", "none"]
CHANNEL_TYPES = ("email", "slack", "webhook", "console")
TEMPLATES_DIR = Path(__file__).parent / "templates"
DELIVERY_TIMEOUT = "Seconds for a whole delivery: connecting, sending and reading the full answer."


# Before the channel models that use it: pydantic resolves their fields' types as they are defined, and a
# field naming a function not defined yet stays a forward reference in ``model_fields`` (which the org
# file's loader reads to keep what parsed of a file with mistakes).
def check_recipient(value: str) -> str:
    """A recipient as people write them (addresses, ``#channel``, a hook URL): one line, and a URL that can
    be sent to. ValueError says what is wrong. ``${VAR}`` references are checked when they are read."""
    if any(ord(character) < 32 or ord(character) == 127 for character in value):
        raise ValueError("must be on one line, without control characters")
    if "://" in value and "${" not in value:
        try:
            split = urlsplit(value)
            host, _ = split.hostname, split.port  # reading the port checks its range
        except ValueError as exc:
            raise ValueError(f"{value!r} is not a valid URL ({exc})") from None
        if split.scheme not in ("http", "https") or not host:
            raise ValueError(f"{value!r} is not an http(s) URL with a host")
        if any(character.isspace() for character in split.netloc):
            raise ValueError(f"{value!r} is not a valid URL (a space in its host)")
    return value


class StrictModel(BaseModel):
    # Not warroom.orgconfig.StrictModel: orgconfig imports this module, so this one must not import it.
    model_config = ConfigDict(extra="forbid")


class TemplateOverride(StrictModel):
    """Replaces parts of a built-in template (Jinja2, sandboxed). Parts left out keep the built-in text."""

    subject: str | None = None
    text: str | None = None
    html: str | None = None


class EmailSettings(StrictModel):
    """SMTP settings; anything left out comes from WARROOM_SMTP_* (settings)."""

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    security: SmtpSecurity | None = Field(
        default=None, description="starttls (usually port 587), tls (implicit, usually 465) or none."
    )
    username: str | None = None
    password: str | None = None
    from_address: str | None = None
    ca_file: str | None = Field(
        default=None, description="PEM file of the CA that signed the server's certificate (private relays)."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description=DELIVERY_TIMEOUT)


class SlackSettings(StrictModel):
    url: str | None = Field(
        default=None, description="The Slack incoming-webhook URL; without it the recipient is the URL."
    )
    timeout: float = Field(default=10.0, gt=0, le=120, description=DELIVERY_TIMEOUT)


class WebhookSettings(StrictModel):
    url: str | None = Field(default=None, description="Where to POST; without it the recipient is the URL.")
    secret: str | None = Field(
        default=None,
        description="HMAC-SHA256 key for X-Warroom-Signature (default WARROOM_WEBHOOK_SECRET).",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: float = Field(default=10.0, gt=0, le=120, description=DELIVERY_TIMEOUT)


class ConsoleSettings(StrictModel):
    pass


class _ChannelBase(StrictModel):
    name: str
    to: Annotated[str, AfterValidator(check_recipient)] | None = Field(
        default=None, description="Default recipient (e.g. a mailing list)."
    )
    templates: dict[str, TemplateOverride] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_an_id(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be letters, digits, '-', '_' or '.'")
        return value


class EmailChannel(_ChannelBase):
    type: Literal["email"]
    settings: EmailSettings = Field(default_factory=EmailSettings)


class SlackChannel(_ChannelBase):
    type: Literal["slack"]
    settings: SlackSettings = Field(default_factory=SlackSettings)


class WebhookChannel(_ChannelBase):
    type: Literal["webhook"]
    settings: WebhookSettings = Field(default_factory=WebhookSettings)


class ConsoleChannel(_ChannelBase):
    type: Literal["console"]
    settings: ConsoleSettings = Field(default_factory=ConsoleSettings)


NotificationChannel = Annotated[
    EmailChannel | SlackChannel | WebhookChannel | ConsoleChannel, Field(discriminator="type")
]
ChannelConfig = EmailChannel | SlackChannel | WebhookChannel | ConsoleChannel


# What message templates see as ``incident`` (``notify.service.incident_view``).
INCIDENT_FIELDS: tuple[str, ...] = (
    "ref",
    "title",
    "summary",
    "severity",
    "status",
    "commander",
    "services",
    "created_at",
    "acknowledged_at",
)


# What an update's template sees of its incident when the audience is outside the org (customers, the status
# page): its ref, severity, title, summary and commander stay inside, whatever an org file's template asks.
EXTERNAL_INCIDENT_FIELDS: tuple[str, ...] = ("status", "services")


def longest_delivery_timeout(channels: Sequence[ChannelConfig]) -> float:
    """The longest any delivery may take (its channel's ``timeout``; 10 s for a channel not configured)."""
    return max(
        [10.0, *(channel.settings.timeout for channel in channels if not isinstance(channel, ConsoleChannel))]
    )


def default_channels() -> list[NotificationChannel]:
    return [ConsoleChannel(name="console", type="console")]


# An org's own mail server delivers to names the public internet does not have: a company network's
# ``corp.local``, a staging ``.test``. email-validator refuses them as special-use; Warroom checks syntax only
# and leaves delivery to the mail server (its refusal is recorded on the notification).
email_validator.SPECIAL_USE_DOMAIN_NAMES[:] = [
    name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES if name not in ("local", "test")
]


def check_email_address(address: str) -> str:
    """One address as a mail server takes it in ``RCPT TO`` (``name@example.com``, no display name), checked
    as written and without DNS by email-validator: a dot-atom local part (non-ASCII letters allowed), a domain
    of valid labels (IDNA) with a dot. ValueError says why not."""
    try:
        email_validator.validate_email(
            address, check_deliverability=False, allow_smtputf8=True, allow_display_name=False, strict=True
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not an email address: {exc}") from None
    return address


def email_recipients(recipient: str) -> list[str]:
    """The addresses of an email recipient (``a@x.example, b@x.example``), each checked; ValueError names the
    first that is not an address."""
    addresses = [part.strip() for part in recipient.split(",") if part.strip()]
    for address in addresses:
        check_email_address(address)
    return addresses


class MissingSecret(Exception):
    pass


def expand_env(value: str) -> str:
    """Replace ``${NAME}`` with the environment variable's value; an unset variable is an error."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise MissingSecret(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(replace, value)


def split_channel_reference(entry: str) -> tuple[str, str | None]:
    """An audience lists channels as ``name`` or ``name:recipient`` (``email:exec@acme.example``)."""
    name, sep, recipient = entry.partition(":")
    return name, (recipient if sep and recipient else None)


def builtin_templates() -> list[str]:
    return sorted({path.name.split(".")[0] for path in TEMPLATES_DIR.glob("*.j2")})


def find_channel(org: OrgConfig, name: str, *, implicit: bool = True) -> ChannelConfig | None:
    """A channel configured in the org file, or else (``implicit``) a bare channel type with its defaults:
    ``email`` (WARROOM_SMTP_*), ``console``, and ``slack``/``webhook`` whose recipient is the URL."""
    configured = next((c for c in org.notification_channels if c.name == name), None)
    if configured is not None or not implicit:
        return configured
    if name == "email":
        return EmailChannel(name=name, type="email")
    if name == "slack":
        return SlackChannel(name=name, type="slack")
    if name == "webhook":
        return WebhookChannel(name=name, type="webhook")
    if name == "console":
        return ConsoleChannel(name=name, type="console")
    return None


def missing_url(channel: ChannelConfig, recipient: str) -> str | None:
    """Why a message to ``recipient`` through ``channel`` cannot be posted anywhere (a Slack or webhook
    channel with no URL of its own, and a recipient that is not one), or None."""
    if channel.type not in ("slack", "webhook") or getattr(channel.settings, "url", None):
        return None
    if recipient.startswith(("http://", "https://")):
        return None
    return f"channel {channel.name!r} has no URL configured, so the recipient must be the URL"


def recipient_problem(channel: ChannelConfig, recipient: str) -> str | None:
    """Why no message to ``recipient`` through ``channel`` could ever be delivered (``missing_url``, or an
    email channel's recipient that is not an email address), or None."""
    no_url = missing_url(channel, recipient)
    if no_url or channel.type != "email":
        return no_url
    try:
        email_recipients(recipient)
    except ValueError as exc:
        return str(exc)
    return None


def channel_names(org: OrgConfig) -> list[str]:
    return sorted({c.name for c in org.notification_channels} | set(CHANNEL_TYPES))


def unmet_secrets(org: OrgConfig, *, webhook_secret: str | None) -> list[str]:
    """What deliveries will fail on in this environment: ``${VAR}`` settings whose variable is unset, and
    webhook channels with no signing secret. Warnings, not problems: the file may be checked on a laptop
    without the production environment (``webhook_secret`` is WARROOM_WEBHOOK_SECRET)."""
    warnings: list[str] = []
    for index, channel in enumerate(org.notification_channels):
        where = f"notification_channels[{index}] ({channel.name})"
        for setting, value in channel.settings.model_dump().items():
            values = value.values() if isinstance(value, dict) else [value]
            for text in values:
                for variable in _ENV_REFERENCE.findall(text) if isinstance(text, str) else []:
                    if not os.environ.get(variable):
                        state = "is empty" if variable in os.environ else "is not set"
                        warnings.append(
                            f"{where}.settings.{setting}: ${{{variable}}} {state} here; "
                            "deliveries fail until the worker's environment sets it"
                        )
        if isinstance(channel, WebhookChannel) and not channel.settings.secret and not webhook_secret:
            warnings.append(
                f"{where}: no signing secret (settings.secret, or WARROOM_WEBHOOK_SECRET); "
                "deliveries fail until one is set"
            )
    configured = {channel.name for channel in org.notification_channels}
    if "webhook" not in configured and not webhook_secret:
        users = _bare_webhook_users(org)
        if users:
            warnings.append(
                f"{', '.join(users[:3])}{' and others' if len(users) > 3 else ''}: the bare webhook channel "
                "has no signing secret (set WARROOM_WEBHOOK_SECRET, or configure a webhook channel)"
            )
    return warnings


def _bare_webhook_users(org: OrgConfig) -> list[str]:
    """Where the file sends through the bare ``webhook`` channel type."""
    users = [
        f"people[{index}] ({person.name})"
        for index, person in enumerate(org.people)
        if any(method.channel == "webhook" for method in person.contact_methods)
        or any(rule.channel == "webhook" for rule in person.notification_rules)
    ]
    users += [
        f"audiences[{index}] ({audience.id})"
        for index, audience in enumerate(org.audiences)
        if any(split_channel_reference(entry)[0] == "webhook" for entry in audience.channels)
    ]
    return users


def check_notification_channels(org: OrgConfig) -> list[str]:
    """Cross-reference problems, as ``section[index].field: message`` strings."""
    from jinja2 import TemplateSyntaxError

    from warroom.alerts.config import undeclared_variables, unknown_template_fields
    from warroom.notify.quoting import FILTERS
    from warroom.templating import LimitedSandbox

    problems: list[str] = []
    known_templates = builtin_templates()
    seen: set[str] = set()
    compiler = LimitedSandbox()
    compiler.filters.update(FILTERS)  # as the environment that renders them has (``render``)
    for index, channel in enumerate(org.notification_channels):
        if channel.name in seen:
            problems.append(f"notification_channels[{index}].name: {channel.name!r} is used twice")
        seen.add(channel.name)
        unreachable = recipient_problem(channel, channel.to) if channel.to else None
        if unreachable:
            problems.append(f"notification_channels[{index}].to: {unreachable}")
        for template, override in channel.templates.items():
            if template not in known_templates:
                problems.append(
                    f"notification_channels[{index}].templates.{template}: not a built-in template; "
                    f"allowed: {', '.join(known_templates)}"
                )
            for part in ("subject", "text", "html"):
                source = getattr(override, part)
                if source is None:
                    continue
                where = f"notification_channels[{index}].templates.{template}.{part}"
                try:
                    parsed = compiler.parse(source)
                except TemplateSyntaxError as exc:
                    problems.append(f"{where}: template error on line {exc.lineno}: {exc.message}")
                    continue
                try:
                    compiler.from_string(parsed)  # compiled too: an unknown filter fails every message
                except TemplateSyntaxError as exc:  # and the fields are checked all the same
                    problems.append(f"{where}: template error on line {exc.lineno}: {exc.message}")
                # A field an incident never has fails every message about one, as rule templates' do.
                unknown = unknown_template_fields(
                    parsed, undeclared_variables(parsed), fields={"incident": INCIDENT_FIELDS}
                )
                if unknown:
                    problems.append(
                        f"{where}: {', '.join(unknown)}: incident has no such field; "
                        f"it has {', '.join(INCIDENT_FIELDS)}"
                    )
    return problems


def check_audience_channels(org: OrgConfig) -> list[str]:
    """Audiences' ``name:recipient`` entries a notification channel could never deliver to, and update
    templates that would show an outside audience what stays inside. Apart from the channels' own checks, so
    that audiences that did not parse skip only these."""
    problems: list[str] = []
    outside = [audience.id for audience in org.audiences if audience.reaches_outside]
    for index, channel in enumerate(org.notification_channels):
        override = channel.templates.get("incident_update")
        told = [
            audience.id
            for audience in org.audiences
            if audience.id in outside
            and any(split_channel_reference(entry)[0] == channel.name for entry in audience.channels)
        ]
        if override is None or not told:
            continue
        for part in ("subject", "text", "html"):
            source = getattr(override, part)
            shown = _shown_outside(source, channel.name) if source is not None else []
            if shown:
                problems.append(
                    f"notification_channels[{index}].templates.incident_update.{part}: shows "
                    f"{', '.join(shown)} to {', '.join(repr(a) for a in told)} (outside the org), who are "
                    f"told only the incident's {' and '.join(EXTERNAL_INCIDENT_FIELDS)}, so every update to "
                    "them would fail; branch on external: {% if external %}…{% else %}…{% endif %}"
                )
    for index, audience in enumerate(org.audiences):
        for entry in audience.channels:
            name, recipient = split_channel_reference(entry)
            # As delivery finds it (``notify.subscribers``): by the name of a channel the file configures. A
            # name that is none (status-page, in-app) is left to other parts and only logged, so a recipient
            # given to it (``email:ops@acme.example`` in a file whose email channel is ``mail``) would never
            # hear of an update.
            configured = find_channel(org, name, implicit=False)
            if configured is None and recipient:
                continue  # a warning (``unheard_recipients``), so that a file that loaded before still loads
            unreachable = recipient_problem(configured, recipient) if configured and recipient else None
            if unreachable:
                problems.append(f"audiences[{index}].channels: {entry!r}: {unreachable}")
    return problems


def unheard_recipients(org: OrgConfig) -> list[str]:
    """Audience entries whose recipient hears nothing: delivery finds a channel by the name the file gives it
    (``notify.subscribers``), so ``email:ops@acme.example`` in a file whose email channel is ``mail`` is only
    logged. A warning, not a problem: an org file that loaded before this check still loads."""
    warnings: list[str] = []
    names = [channel.name for channel in org.notification_channels]
    for index, audience in enumerate(org.audiences):
        for entry in audience.channels:
            name, recipient = split_channel_reference(entry)
            if recipient and find_channel(org, name, implicit=False) is None:
                warnings.append(
                    f"audiences[{index}] ({audience.id}).channels: {entry!r}: nothing would be sent to "
                    f"{recipient!r} (an update there is only logged): "
                    + not_in_file(name, "notification channel", names)
                )
    return warnings


def _shown_outside(source: str, channel: str) -> list[str]:
    """What an ``incident_update`` template shows an audience outside the org that it is not given (the
    incident's ref, severity, title, the sender): rendered as for one, each missing value it prints noted.
    A template that does not parse or render is reported by the channel checks."""
    from jinja2 import TemplateError, Undefined, nodes

    from warroom.notify.quoting import FILTERS
    from warroom.templating import LimitedSandbox

    incident = {"status": "investigating", "services": ["payments"]}
    shown: list[str] = []

    class Noted(Undefined):
        """Prints as nothing, as the sandbox renders on, and notes each missing value that is shown
        (``is defined``, ``default`` and ``if`` only test it)."""

        __slots__ = ()

        def _note(self) -> None:
            name = self._undefined_name or "?"
            what = f"incident.{name}" if self._undefined_obj is incident else name
            if what not in shown:
                shown.append(what)

        def __str__(self) -> str:
            self._note()
            return ""

        def __iter__(self) -> Iterator[Any]:
            self._note()
            return iter(())

        def __len__(self) -> int:
            self._note()
            return 0

        def _fail_with_undefined_error(self, *args: Any, **kwargs: Any) -> Any:
            self._note()
            return Noted()

    environment = LimitedSandbox(undefined=Noted)
    environment.filters.update(FILTERS)
    variables = {
        "organization": "Acme",
        "base_url": "https://warroom.example",
        "channel": channel,
        "recipient": "updates@example.com",
        "incident": incident,
        "message": "We are looking into it.",
        "status": incident["status"],
        "services": incident["services"],
        "external": True,
    }
    with contextlib.suppress(TemplateError, TypeError, ValueError):
        parsed = environment.parse(source)
        # An unknown filter or test (reported by the channel checks) would fail the compilation and hide
        # what the template shows: each passes its value through here, or tests false.
        for node in parsed.find_all(nodes.Filter):
            environment.filters.setdefault(node.name, _passed_through)
        for test in parsed.find_all(nodes.Test):
            environment.tests.setdefault(test.name, _tested_false)
        environment.from_string(parsed).render(variables)
    return shown


def _passed_through(value: Any, *_args: Any, **_kwargs: Any) -> Any:
    return value


def _tested_false(*_args: Any, **_kwargs: Any) -> bool:
    return False
