"""Token roles and integration types.

Plain enums, apart from the tables, so that the API client and the CLI use them without SQLAlchemy."""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    viewer = "viewer"
    responder = "responder"
    admin = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class IntegrationType(enum.StrEnum):
    """Which intake endpoint a key is for."""

    alertmanager = "alertmanager"
    grafana = "grafana"
    pagerduty = "pagerduty"
    generic = "generic"
    heartbeat = "heartbeat"  # pings of a dead man's switch (POST /api/v1/heartbeats/<name>)
    email = "email"  # messages to <key>@… on the mail intake (alerts.mail)
    opsgenie = "opsgenie"  # Opsgenie's Alert API shape (POST /v2/alerts, Authorization: GenieKey <key>)
    webhook = (
        "webhook"  # a tool's own JSON, read by a format of the org file (POST /api/v1/alerts/webhook/<name>)
    )
