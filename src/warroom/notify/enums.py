"""A notification delivery's statuses.

Plain enums, apart from the tables, so that the API client and the CLI use them without SQLAlchemy."""

from __future__ import annotations

import enum


class DeliveryStatus(enum.StrEnum):
    pending = "pending"  # queued, not tried yet
    sent = "sent"
    failed = "failed"  # the last attempt failed; another is scheduled
    dead = "dead"  # gave up: a dead letter, shown on the incident and in `warroom notify failures`
    withdrawn = "withdrawn"  # no longer wanted before it went out (a page of an incident since acknowledged)
