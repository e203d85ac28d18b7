"""The request bodies of the intake routes, for the OpenAPI document only (each route's ``openapi_extra``).

The routes read their bodies themselves, as bytes (``fastpath``): FastAPI must not parse them, so it cannot
know them. These say what the routes' parsers take, from the same pydantic models."""

from __future__ import annotations

from typing import Any

from warroom.alerts.schemas import (
    AlertmanagerWebhook,
    CustomerReport,
    GenericAlert,
    InternalReport,
    OpsgenieAction,
    OpsgenieAlert,
    OpsgenieDescription,
    OpsgenieDetails,
    OpsgenieMessage,
    OpsgenieNote,
    OpsgeniePriority,
    OpsgenieSnooze,
    OpsgenieTags,
    PagerDutyChange,
    PagerDutyEvent,
    PagerDutyV1Event,
)
from warroom.openapi import json_body, model_ref, request_body

GENERIC = json_body(
    GenericAlert,
    many=True,
    description="One alert, or a non-empty list of them (accepted whole or not at all).",
)
ALERTMANAGER = json_body(
    AlertmanagerWebhook,
    description="Alertmanager's webhook (version 4); fields not named here are kept with the alert as sent.",
)
GRAFANA = json_body(
    AlertmanagerWebhook,
    description="Grafana's webhook: Alertmanager's shape with Grafana's extra fields (title, orgId, and per "
    "alert silenceURL, dashboardURL, panelURL, imageURL, values).",
)
PAGERDUTY = json_body(PagerDutyEvent, description="PagerDuty's Events API v2 event.")
PAGERDUTY_V1 = json_body(PagerDutyV1Event, description="PagerDuty's Events API v1 event.")
PAGERDUTY_CHANGE = json_body(PagerDutyChange, description="PagerDuty's Change Events API event.")
OPSGENIE_CREATE = json_body(OpsgenieAlert, description="Opsgenie's create-alert request.")
OPSGENIE_NOTE = json_body(OpsgenieNote)
OPSGENIE_ACTION = json_body(
    OpsgenieAction,
    OpsgenieSnooze,
    OpsgenieTags,
    OpsgenieDetails,
    required=False,
    description="By action: close, acknowledge, unacknowledge: OpsgenieAction (optional); snooze: "
    "OpsgenieSnooze; tags: OpsgenieTags; details: OpsgenieDetails.",
)
OPSGENIE_UPDATE = json_body(
    OpsgenieMessage,
    OpsgenieDescription,
    OpsgeniePriority,
    description="By update: message: OpsgenieMessage; description: OpsgenieDescription; priority: "
    "OpsgeniePriority.",
)

# A tool's own webhook: whatever JSON the org file's format reads, or a form of string fields.
_FORM: dict[str, Any] = {
    "type": "object",
    "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    "description": "The form's fields (a list where a field repeats).",
}
_TOOL_JSON: dict[str, Any] = {
    "type": ["object", "array"],
    "description": "The tool's own JSON, as the webhook format reads it.",
}
WEBHOOK = request_body(
    {
        "application/json": _TOOL_JSON,
        "application/x-www-form-urlencoded": _FORM,
        "multipart/form-data": _FORM,
    },
    description="The tool's own payload, read by the org file's webhook format named in the path.",
)

# A dry run takes a delivery of any source, as that source would send it.
PREVIEW = request_body(
    {
        "application/json": {
            "anyOf": [
                model_ref(GenericAlert),
                {"type": "array", "items": model_ref(GenericAlert), "minItems": 1},
                model_ref(AlertmanagerWebhook),
                model_ref(PagerDutyEvent),
                model_ref(OpsgenieAlert),
                model_ref(CustomerReport),
                model_ref(InternalReport),
                _TOOL_JSON,
            ]
        },
        "message/rfc822": {
            "type": "string",
            "description": "A mail message, as an email integration gets it.",
        },
        "application/x-www-form-urlencoded": _FORM,
        "multipart/form-data": _FORM,
    },
    description="One delivery as its source would send it (see source): a plain alert or a list of them, an "
    "Alertmanager or Grafana webhook, a PagerDuty v2 event, an Opsgenie create-alert request, a report, a "
    "mail message, or (source webhook) a tool's own JSON or form.",
)

HEARTBEAT_OUTPUT = request_body(
    {
        "text/plain": {
            "type": "string",
            "description": "The run's output; its last 10,000 characters are kept.",
        }
    },
    required=False,
    description="Optional: a failed run's output, shown on its alert.",
)
