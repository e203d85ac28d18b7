"""An alert's statuses.

Plain enums, apart from the tables, so that the API client and the CLI use them without SQLAlchemy."""

from __future__ import annotations

import enum


class AlertStatus(enum.StrEnum):
    firing = "firing"
    acknowledged = "acknowledged"
    resolved = "resolved"
