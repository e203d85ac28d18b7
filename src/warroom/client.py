"""A typed Python client of the Warroom REST API. The CLI's client commands use it; scripts can too."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import httpx

from warroom.alerts.schemas import (
    AlertDetail,
    AlertOverview,
    AlertPage,
    ChangeRead,
    ChangeRecorded,
    HeartbeatRead,
    IncidentMerged,
    MaintenanceDetail,
    MaintenanceRead,
    NoiseReport,
    RoutingPreview,
)
from warroom.incidents.schemas import (
    CommunicationRead,
    IncidentPage,
    IncidentRead,
    ResponderLeft,
    ResponderRead,
    TimelineEntryRead,
)
from warroom.notify.schemas import DeliveryPage, DeliveryRead
from warroom.oncall.schemas import (
    EscalationPolicyRead,
    IncidentPaging,
    OnCallRead,
    OverrideRead,
    PageRequested,
    ShiftRead,
)
from warroom.orgconfig import ConfigStatus
from warroom.severity.schemas import SeverityRead, SuggestResponse


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def seg(value: object) -> str:
    """``value`` as one path segment: an id typed as ``../tokens/4#`` names no incident, and reaches no
    other endpoint."""
    text = quote(str(value), safe="")
    if not text.strip():
        raise ApiError(0, "invalid_input", "an empty id names nothing")
    return text.replace(".", "%2E") if text.strip(".") == "" else text


def query(**values: Any) -> dict[str, Any]:
    """Query parameters, leaving out filters that were not given (None, empty)."""
    return {name: value for name, value in values.items() if value not in (None, "", [])}


class Client:
    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("WARROOM_URL") or "http://127.0.0.1:8080").rstrip("/")
        self.token = token if token is not None else os.environ.get("WARROOM_TOKEN")
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(
        self, method: str, path: str, *, json: Any = None, params: Any = None, content: bytes | None = None
    ) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params, content=content)
        except httpx.HTTPError as exc:
            raise ApiError(0, "unreachable", f"cannot reach {self.url}: {exc}") from exc
        if 300 <= response.status_code < 400:
            # The API never redirects what this client asks; a redirect is a wrong URL or path.
            raise ApiError(response.status_code, "not_found", f"nothing at {path!r}")
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
                raise ApiError(response.status_code, error["code"], error["message"], error.get("details"))
            except (ValueError, KeyError, TypeError):
                raise ApiError(response.status_code, "http_error", response.text[:500]) from None
        return response.json() if response.content else None

    # --- the org file ---

    def config_status(self) -> ConfigStatus:
        return ConfigStatus.model_validate(self.request("GET", "/api/v1/config"))

    def reload_config(self, *, force: bool = False) -> ConfigStatus:
        """Have the server read its org file again (admin); ApiError 422 with the problems if it has any.
        ``force``: take it even if it empties a section the running one has (services, rules, formats…)."""
        params = {"force": "true"} if force else None
        return ConfigStatus.model_validate(self.request("POST", "/api/v1/config/reload", params=params))

    # --- incidents ---

    def list_incidents(
        self,
        *,
        status: list[str] | None = None,
        severity: list[str] | None = None,
        service: str | None = None,
        state: str = "all",
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> IncidentPage:
        params = query(
            state=state,
            limit=limit,
            offset=offset,
            before_id=before_id,
            status=status,
            severity=severity,
            service=service,
        )
        return IncidentPage.model_validate(self.request("GET", "/api/v1/incidents", params=params))

    def create_incident(self, **fields: Any) -> IncidentRead:
        return IncidentRead.model_validate(self.request("POST", "/api/v1/incidents", json=fields))

    def get_incident(self, ref: str) -> IncidentRead:
        return IncidentRead.model_validate(self.request("GET", f"/api/v1/incidents/{seg(ref)}"))

    def update_incident(self, ref: str, **fields: Any) -> IncidentRead:
        return IncidentRead.model_validate(
            self.request("PATCH", f"/api/v1/incidents/{seg(ref)}", json=fields)
        )

    def acknowledge(self, ref: str) -> IncidentRead:
        return IncidentRead.model_validate(self.request("POST", f"/api/v1/incidents/{seg(ref)}/ack"))

    def resolve(self, ref: str, note: str | None = None) -> IncidentRead:
        body: dict[str, Any] = {"status": "resolved"}
        if note:
            body["note"] = note
        return IncidentRead.model_validate(self.request("PATCH", f"/api/v1/incidents/{seg(ref)}", json=body))

    def timeline(self, ref: str) -> list[TimelineEntryRead]:
        rows = self.request("GET", f"/api/v1/incidents/{seg(ref)}/timeline")
        return [TimelineEntryRead.model_validate(row) for row in rows]

    def log_action(
        self,
        ref: str,
        action: str,
        *,
        impact: str | None = None,
        kind: str = "action",
        system_state: dict[str, Any] | None = None,
    ) -> TimelineEntryRead:
        body = {"action": action, "impact": impact, "kind": kind, "system_state": system_state}
        return TimelineEntryRead.model_validate(
            self.request("POST", f"/api/v1/incidents/{seg(ref)}/timeline", json=body)
        )

    def add_responder(self, ref: str, name: str, role: str, contact: str = "") -> ResponderRead:
        body = {"name": name, "role": role, "contact": contact}
        return ResponderRead.model_validate(
            self.request("POST", f"/api/v1/incidents/{seg(ref)}/responders", json=body)
        )

    def remove_responder(self, ref: str, responder_id: int) -> ResponderLeft:
        return ResponderLeft.model_validate(
            self.request("DELETE", f"/api/v1/incidents/{seg(ref)}/responders/{seg(responder_id)}")
        )

    def send_update(self, ref: str, message: str, audience: str) -> CommunicationRead:
        body = {"message": message, "audience": audience}
        return CommunicationRead.model_validate(
            self.request("POST", f"/api/v1/incidents/{seg(ref)}/updates", json=body)
        )

    def updates(self, ref: str) -> list[CommunicationRead]:
        rows = self.request("GET", f"/api/v1/incidents/{seg(ref)}/updates")
        return [CommunicationRead.model_validate(row) for row in rows]

    # --- severities ---

    def severities(self) -> list[SeverityRead]:
        return [SeverityRead.model_validate(row) for row in self.request("GET", "/api/v1/severities")]

    def suggest_severity(
        self, assessment: dict[str, Any], services: list[str] | None = None
    ) -> SuggestResponse:
        body = {"assessment": assessment, "services": services or []}
        return SuggestResponse.model_validate(self.request("POST", "/api/v1/severities/suggest", json=body))

    # --- on-call ---

    def who_is_on_call(self, *, schedule: str | None = None, at: str | None = None) -> list[OnCallRead]:
        params = query(schedule=schedule, at=at)
        return [
            OnCallRead.model_validate(row) for row in self.request("GET", "/api/v1/oncall", params=params)
        ]

    def shifts(self, schedule: str, *, count: int = 10, after: str | None = None) -> list[ShiftRead]:
        params = query(count=count, after=after)
        rows = self.request("GET", f"/api/v1/oncall/{seg(schedule)}/shifts", params=params)
        return [ShiftRead.model_validate(row) for row in rows]

    def overrides(self, schedule: str, *, include_past: bool = False) -> list[OverrideRead]:
        rows = self.request(
            "GET", f"/api/v1/oncall/{seg(schedule)}/overrides", params={"include_past": include_past}
        )
        return [OverrideRead.model_validate(row) for row in rows]

    def create_override(
        self, schedule: str, *, person: str, start: str, end: str, reason: str = ""
    ) -> OverrideRead:
        body = {"person": person, "start": start, "end": end, "reason": reason}
        return OverrideRead.model_validate(
            self.request("POST", f"/api/v1/oncall/{seg(schedule)}/overrides", json=body)
        )

    def delete_override(self, schedule: str, override_id: int) -> OverrideRead:
        return OverrideRead.model_validate(
            self.request("DELETE", f"/api/v1/oncall/{seg(schedule)}/overrides/{seg(override_id)}")
        )

    def escalation_policies(self) -> list[EscalationPolicyRead]:
        rows = self.request("GET", "/api/v1/escalation-policies")
        return [EscalationPolicyRead.model_validate(row) for row in rows]

    def incident_pages(self, ref: str) -> IncidentPaging:
        return IncidentPaging.model_validate(self.request("GET", f"/api/v1/incidents/{seg(ref)}/pages"))

    def request_page(
        self, ref: str, *, policy: str | None = None, note: str | None = None, person: str | None = None
    ) -> PageRequested:
        body = {"policy": policy, "note": note} | ({"person": person} if person is not None else {})
        return PageRequested.model_validate(
            self.request("POST", f"/api/v1/incidents/{seg(ref)}/pages", json=body)
        )

    # --- notifications ---

    def list_notifications(
        self,
        *,
        status: str | None = None,
        incident: str | None = None,
        channel: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> DeliveryPage:
        params = query(
            limit=limit, offset=offset, before_id=before_id, status=status, incident=incident, channel=channel
        )
        return DeliveryPage.model_validate(self.request("GET", "/api/v1/notifications", params=params))

    def get_notification(self, delivery_id: int) -> DeliveryRead:
        return DeliveryRead.model_validate(self.request("GET", f"/api/v1/notifications/{seg(delivery_id)}"))

    def send_test_notification(self, channel: str, to: str = "", note: str = "") -> DeliveryRead:
        body = {"channel": channel, "to": to, "note": note}
        return DeliveryRead.model_validate(self.request("POST", "/api/v1/notifications/test", json=body))

    def retry_notification(self, delivery_id: int) -> DeliveryRead:
        return DeliveryRead.model_validate(
            self.request("POST", f"/api/v1/notifications/{seg(delivery_id)}/retry")
        )

    # --- alerts ---

    def list_alerts(
        self,
        *,
        firing: bool = False,
        unrouted: bool = False,
        snoozed: bool = False,
        status: list[str] | None = None,
        source: list[str] | None = None,
        integration: list[str] | None = None,
        incident: list[str] | None = None,
        service: list[str] | None = None,
        severity: list[str] | None = None,
        labels: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        search: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> AlertPage:
        params = query(
            search=search,
            integration=integration,
            service=service,
            severity=severity,
            label=labels,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
            before_id=before_id,
            firing="true" if firing else None,
            unrouted="true" if unrouted else None,
            snoozed="true" if snoozed else None,
            status=status,
            source=source,
            incident=incident,
        )
        return AlertPage.model_validate(self.request("GET", "/api/v1/alerts", params=params))

    def alert_noise(self, *, since: str | None = None, by: str | None = None, limit: int = 20) -> NoiseReport:
        params = query(since=since, by=by, limit=limit)
        return NoiseReport.model_validate(self.request("GET", "/api/v1/alerts/noise", params=params))

    def alert_overview(self, *, since: str | None = None) -> AlertOverview:
        params = query(since=since)
        return AlertOverview.model_validate(self.request("GET", "/api/v1/alerts/overview", params=params))

    def get_alert(self, ref: str) -> AlertDetail:
        return AlertDetail.model_validate(self.request("GET", f"/api/v1/alerts/{seg(ref)}"))

    def promote_alert(
        self,
        ref: str,
        *,
        title: str | None = None,
        severity: str | None = None,
        move: bool = False,
        force: bool = False,
    ) -> AlertDetail:
        body: dict[str, object] = {
            k: v for k, v in {"title": title, "severity": severity}.items() if v is not None
        }
        if move:
            body["move"] = True
        if force:
            body["force"] = True
        return AlertDetail.model_validate(
            self.request("POST", f"/api/v1/alerts/{seg(ref)}/promote", json=body)
        )

    def merge_incident(self, ref: str, into: str, *, note: str | None = None) -> IncidentMerged:
        body = {"into": into} | ({"note": note} if note is not None else {})
        merged = self.request("POST", f"/api/v1/incidents/{seg(ref)}/merge", json=body)
        return IncidentMerged.model_validate(merged)

    def attach_alert(self, ref: str, incident: str) -> AlertDetail:
        body = {"incident": incident}
        return AlertDetail.model_validate(
            self.request("POST", f"/api/v1/alerts/{seg(ref)}/attach", json=body)
        )

    def acknowledge_alert(self, ref: str) -> AlertDetail:
        return AlertDetail.model_validate(self.request("POST", f"/api/v1/alerts/{seg(ref)}/acknowledge"))

    def unacknowledge_alert(self, ref: str) -> AlertDetail:
        return AlertDetail.model_validate(self.request("POST", f"/api/v1/alerts/{seg(ref)}/unacknowledge"))

    def snooze_alert(self, ref: str, *, duration: str | None = None, until: str | None = None) -> AlertDetail:
        body = {"duration": duration} if duration is not None else {"until": until}
        return AlertDetail.model_validate(
            self.request("POST", f"/api/v1/alerts/{seg(ref)}/snooze", json=body)
        )

    def resolve_alert(self, ref: str, *, note: str | None = None) -> AlertDetail:
        body = {"note": note} if note is not None else {}
        return AlertDetail.model_validate(
            self.request("POST", f"/api/v1/alerts/{seg(ref)}/resolve", json=body)
        )

    def note_alert(self, ref: str, body: str) -> AlertDetail:
        return AlertDetail.model_validate(
            self.request("POST", f"/api/v1/alerts/{seg(ref)}/notes", json={"body": body})
        )

    def edit_alert_note(self, ref: str, note_id: int, body: str) -> AlertDetail:
        return AlertDetail.model_validate(
            self.request("PATCH", f"/api/v1/alerts/{seg(ref)}/notes/{seg(note_id)}", json={"body": body})
        )

    def delete_alert_note(self, ref: str, note_id: int) -> AlertDetail:
        return AlertDetail.model_validate(
            self.request("DELETE", f"/api/v1/alerts/{seg(ref)}/notes/{seg(note_id)}")
        )

    def preview_alerts(
        self,
        delivery: bytes,
        source: str = "auto",
        integration: int | None = None,
        webhook_format: str | None = None,
    ) -> list[RoutingPreview]:
        """The rules' dry run on one delivery, with what is open on the server now (the open alert among
        ``integration``'s alerts, when given). The server's ``webhook_format`` reads a tool's own JSON."""
        params = query(source=source, integration=integration, webhook_format=webhook_format)
        rows = self.request("POST", "/api/v1/alerts/preview", params=params, content=delivery)
        return [RoutingPreview.model_validate(row) for row in rows]

    def record_change(
        self,
        summary: str,
        *,
        service: str | None = None,
        source: str | None = None,
        happened_at: str | None = None,
        links: list[str] | None = None,
        details: dict[str, Any] | None = None,
    ) -> ChangeRecorded:
        """Record a change; ``happened_at`` in ISO 8601 with an offset (default: now)."""
        body = {
            "summary": summary,
            "service": service,
            "source": source,
            "happened_at": happened_at,
            "links": [{"href": href} for href in links or []],
            "details": details or {},
        }
        sent = {name: value for name, value in body.items() if value is not None}
        return ChangeRecorded.model_validate(self.request("POST", "/api/v1/changes", json=sent))

    def list_changes(
        self,
        *,
        service: str | None = None,
        since: str | None = None,
        until: str | None = None,
        incident: str | None = None,
        limit: int = 50,
        offset: int = 0,
        before_id: int | None = None,
    ) -> list[ChangeRead]:
        params = query(
            service=service,
            since=since,
            until=until,
            incident=incident,
            limit=limit,
            offset=offset,
            before_id=before_id,
        )
        rows = self.request("GET", "/api/v1/changes", params=params)
        return [ChangeRead.model_validate(row) for row in rows]

    def list_heartbeats(self) -> list[HeartbeatRead]:
        return [HeartbeatRead.model_validate(row) for row in self.request("GET", "/api/v1/heartbeats")]

    # --- maintenance windows ---

    def list_maintenance(self, *, include_ended: bool = False) -> list[MaintenanceRead]:
        params = query(all="true" if include_ended else None)
        rows = self.request("GET", "/api/v1/maintenance", params=params)
        return [MaintenanceRead.model_validate(row) for row in rows]

    def create_maintenance(self, **fields: Any) -> MaintenanceRead:
        body = {name: value for name, value in fields.items() if value is not None}
        return MaintenanceRead.model_validate(self.request("POST", "/api/v1/maintenance", json=body))

    def get_maintenance(self, ref: str) -> MaintenanceDetail:
        return MaintenanceDetail.model_validate(self.request("GET", f"/api/v1/maintenance/{seg(ref)}"))

    def extend_maintenance(self, ref: str, by: str) -> MaintenanceRead:
        body = {"by": by}
        return MaintenanceRead.model_validate(
            self.request("POST", f"/api/v1/maintenance/{seg(ref)}/extend", json=body)
        )

    def end_maintenance(self, ref: str) -> MaintenanceRead:
        return MaintenanceRead.model_validate(self.request("POST", f"/api/v1/maintenance/{seg(ref)}/end"))

    def report(
        self,
        description: str,
        *,
        service: str | None = None,
        severity: str = "warning",
        labels: dict[str, str] | None = None,
    ) -> AlertDetail:
        body: dict[str, Any] = {"description": description, "severity": severity, "labels": labels or {}}
        if service:
            body["service"] = service
        return AlertDetail.model_validate(self.request("POST", "/api/v1/reports/internal", json=body))
