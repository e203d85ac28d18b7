"""Enrichment (``automation.enrich``): arriving alerts are filled in or corrected before anything acts on
them, so rules, grouping, maintenance windows and people all see the service, severity, labels and links the
org file says, whatever the source sent.

It runs on every event that fires an alert (the first occurrence and each repeat, since a repeat brings the
source's severity and summary again), after the integration's default service and before the alert is
stored. The dedup key was made from what the source sent, so enrichment never changes which alert an event
belongs to. A template that fails on an alert does not lose it: the entry's other fields still apply, and the
failure is kept with the alert (the ``enrichment_errors`` annotation) and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from warroom.alerts.adapters import AlertEvent
from warroom.alerts.config import AlertFacts, AutomationConfig, EnrichRule, TemplateRenderer
from warroom.fields import safe_link

log = logging.getLogger("warroom.alerts.enrichment")

ERRORS_ANNOTATION = "enrichment_errors"


def _view(source: str, event: AlertEvent, integration: str | None) -> dict[str, Any]:
    return {
        "alert": {
            "source": source,
            "integration": integration,
            "type": event.alert_type,
            "summary": event.summary,
            "severity": event.severity,
            "service": event.service,
            "labels": dict(event.labels),
        }
    }


def _apply(entry: EnrichRule, source: str, event: AlertEvent, integration: str | None) -> list[str]:
    """Apply one matching entry; the failures, as "entry: field: error"."""
    renderer = TemplateRenderer(_view(source, event, integration), f"{entry.name}: ")
    if entry.service is not None and (service := renderer.text("service", entry.service)):
        event.service = service[:200]
        event.service_is_guess = False
    if entry.severity is not None:
        event.severity = entry.severity
    labels = {
        name: value[:1000]
        for name, template in entry.labels.items()
        if (value := renderer.text(f"labels.{name}", template))
    }
    if labels:
        event.labels = {**event.labels, **labels}
    annotations = {
        name: value
        for name, template in entry.annotations.items()
        if (value := renderer.text(f"annotations.{name}", template))
    }
    if annotations:
        event.annotations = {**event.annotations, **annotations}
    for index, link in enumerate(entry.links):
        href = renderer.text(f"links[{index}].href", link.href)
        if href and not safe_link(href):  # people click it: a sender's javascript: never becomes a link
            renderer.errors.append(
                {
                    "field": f"{entry.name}: links[{index}].href",
                    "message": "not an http://, https:// or mailto: address",
                }
            )
        elif href:
            shown = renderer.text(f"links[{index}].text", link.text)
            event.links = [*event.links, {"href": href[:2000], **({"text": shown[:500]} if shown else {})}]
    return [f"{error['field']}: {error['message']}" for error in renderer.errors]


def enrich(
    automation: AutomationConfig, source: str, events: Sequence[AlertEvent], integration: str | None = None
) -> list[str]:
    """Apply every matching ``automation.enrich`` entry, in order, to each firing event (in place) that came
    in through the integration named ``integration``; the names of the entries that failed, once per failed
    field."""
    failed: list[str] = []
    for event in events:
        if event.action != "trigger":
            continue
        errors: list[str] = []
        facts: AlertFacts | None = None  # made again only after an entry changed the event
        for entry in automation.enrich:
            if facts is None:
                facts = AlertFacts(
                    source, event.severity, event.alert_type, event.service, event.labels, integration
                )
            if entry.match.accepts(facts):
                errors.extend(_apply(entry, source, event, integration))
                facts = None
        if errors:
            log.warning("enrichment of %s alert %s: %s", source, event.dedup_key, "; ".join(errors))
            event.annotations = {**event.annotations, ERRORS_ANNOTATION: errors}
            failed.extend(error.split(":", 1)[0] for error in errors)
    return failed
