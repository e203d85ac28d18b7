"""Imports every domain's tables and event subscribers, so both are registered before use.

Each domain with subscribers adds its ``subscribers`` module to ``SUBSCRIBER_MODULES``; each domain
with job handlers (``@job_handler``) adds the module that defines them to ``JOB_HANDLER_MODULES``.
"""

from __future__ import annotations

import importlib

SUBSCRIBER_MODULES: list[str] = [
    "warroom.alerts.subscribers",
    "warroom.comms.subscribers",
    "warroom.notify.subscribers",
    "warroom.oncall.subscribers",
]
JOB_HANDLER_MODULES: list[str] = [
    "warroom.alerts.digest",
    "warroom.alerts.handlers",
    "warroom.alerts.heartbeats",
    "warroom.alerts.maintenance",
    "warroom.alerts.pending",
    "warroom.alerts.snooze",
    "warroom.alerts.settle",
    "warroom.alerts.status_pages",
    "warroom.alerts.expiry",
    "warroom.alerts.retention",
    "warroom.auth.integrations",
    "warroom.comms.reminders",
    "warroom.notify.handlers",
    "warroom.oncall.paging",
]

_loaded = False


def load() -> None:
    global _loaded
    if _loaded:
        return
    importlib.import_module("warroom.models")
    for module in [*SUBSCRIBER_MODULES, *JOB_HANDLER_MODULES]:
        importlib.import_module(module)
    _loaded = True
