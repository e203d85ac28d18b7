"""Render messages from templates in a Jinja2 sandbox (org-file overrides are user-editable text)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import (
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    TemplateError,
    TemplateNotFound,
)

from warroom.errors import InvalidInput
from warroom.notify.config import TEMPLATES_DIR, ChannelConfig, builtin_templates
from warroom.notify.quoting import FILTERS
from warroom.templating import FalsyStrictUndefined, LimitedSandbox

_PARTS = (("subject", "subject.j2"), ("text", "txt.j2"), ("html", "html.j2"))


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str | None


def _environment(channel: ChannelConfig) -> LimitedSandbox:
    overrides: dict[str, str] = {}
    for name, override in channel.templates.items():
        for part, suffix in _PARTS:
            source = getattr(override, part)
            if source is not None:
                overrides[f"{name}.{suffix}"] = source
    return _cached_environment(tuple(sorted(overrides.items())))


@lru_cache(maxsize=64)
def _cached_environment(overrides: tuple[tuple[str, str], ...]) -> LimitedSandbox:
    """One environment per distinct set of overrides, so each template is compiled once, not per message."""
    environment = LimitedSandbox(
        loader=ChoiceLoader([DictLoader(dict(overrides)), FileSystemLoader(TEMPLATES_DIR)]),
        # HTML parts are escaped; subjects and plain text are not HTML.
        autoescape=lambda name: bool(name) and name.endswith(".html.j2"),
        undefined=FalsyStrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(FILTERS)
    return environment


def render(channel: ChannelConfig, template: str, variables: dict[str, Any]) -> Rendered:
    known = builtin_templates()
    if template not in known:
        raise InvalidInput(
            f"unknown template {template!r}; allowed: {', '.join(known)}",
            {"field": "template", "allowed": known},
        )
    environment = _environment(channel)
    try:
        subject = " ".join(environment.get_template(f"{template}.subject.j2").render(variables).split())
        text = environment.get_template(f"{template}.txt.j2").render(variables).strip() + "\n"
        html = None
        if channel.type == "email":
            try:
                html = environment.get_template(f"{template}.html.j2").render(variables)
            except TemplateNotFound:
                html = None
    except TemplateError as exc:
        raise InvalidInput(
            f"template {template!r} for channel {channel.name!r} could not be rendered: {exc}",
            {"field": "template", "channel": channel.name},
        ) from exc
    return Rendered(subject=subject[:500], text=text, html=html)
