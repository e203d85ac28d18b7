"""Reloading the org file in a running process, as Alertmanager's ``/-/reload`` does: ``kill -HUP`` the
process, or ``POST /api/v1/config/reload`` (``warroom config reload``). Rules, webhook formats, enrichment,
inhibit rules, heartbeats, schedules: what the file says applies from the next request on, without a restart
that would drop connections in flight.

A file with problems is refused, with every problem, and the running configuration stays. After a reload the
chains of recurring jobs are started for entries that are new (a status page to poll, a maintenance schedule,
auto-resolve, a heartbeat watched before its first ping); the jobs of entries that are gone find them gone and
stop. Each process holds its own copy: reload every process that serves or works (``warroom worker`` too).
"""

from __future__ import annotations

import logging

from warroom.alerts.expiry import schedule_sweeps
from warroom.alerts.heartbeats import watch_unpinged
from warroom.alerts.maintenance import schedule_windows
from warroom.alerts.retention import schedule_pruning
from warroom.alerts.status_pages import schedule_polls
from warroom.auth import integrations
from warroom.context import AppContext
from warroom.db import utcnow
from warroom.orgconfig import ConfigError, ConfigStatus, OrgConfig, load_org_config

log = logging.getLogger("warroom.reload")


def summary(org: OrgConfig) -> str:
    """What an org file holds, in one line (``config check`` prints it too)."""
    automation = org.automation
    counts = [
        (len(org.services), "services"),
        (len(org.severities), f"severity levels ({', '.join(org.severity_ids)})"),
        (len(org.audiences), "audiences"),
        (len(org.severity_rules), "suggestion rules"),
        (len(org.people), "people"),
        (len(org.teams), "teams"),
        (len(org.schedules), "schedules"),
        (len(org.escalation_policies), "escalation policies"),
        (len(automation.rules), "automation rules"),
        (len(automation.enrich), "enrichment entries"),
        (len(automation.inhibit_rules), "inhibit rules"),
        (len(automation.webhook_formats), "webhook formats"),
        (len(automation.heartbeats), "heartbeats"),
    ]
    return ", ".join(f"{count} {what}" for count, what in counts)


def status(context: AppContext) -> ConfigStatus:
    path = context.settings.config
    return ConfigStatus(
        file=str(path) if path is not None else None,
        loaded_at=context.org_loaded_at,
        summary=summary(context.org),
    )


def start_recurring(context: AppContext) -> None:
    """Start the chains of recurring jobs the org file asks for that have none pending (a new entry, or a
    fresh database): status page polls, recurring maintenance windows, auto-resolve sweeps, retention, and the
    first deadline of heartbeats watched before their first ping. Warn of integrations whose service is
    gone."""
    with context.db.write() as session:
        schedule_polls(session, context.org)
        schedule_windows(session, context.org)
        watch_unpinged(session, context.org)
        schedule_sweeps(session, context.org)
        schedule_pruning(session)
        lost = integrations.lost_services(session, context.org)
    for integration in lost:
        log.warning("%s", integrations.lost_service_warning(integration))


def reload_org(context: AppContext) -> ConfigStatus:
    """Read the org file again and run with it; ConfigError if it has problems (the running one stays)."""
    org = load_org_config(context.settings.config)
    context.org = org
    context.org_loaded_at = utcnow()
    start_recurring(context)
    loaded = status(context)
    log.info("org file %s reloaded: %s", loaded.file or "(none: defaults)", loaded.summary)
    return loaded


def reload_logged(context: AppContext) -> None:
    """``reload_org`` for a signal: problems are logged, not raised."""
    try:
        reload_org(context)
    except ConfigError as exc:
        log.error(
            "org file %s not reloaded, the running one stays: %s", exc.path, "; ".join(map(str, exc.problems))
        )
    except Exception:
        log.exception("org file reload failed; the running one stays")
