"""``alerts list --search``: alerts with a text (any case) in their summary, type, dedup key, service or
labels, e.g. the host a responder is looking at."""

from __future__ import annotations

from fastapi.testclient import TestClient

from warroom.context import AppContext


def test_search_finds_text_in_summary_type_key_service_and_labels(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    alerts = [
        {"summary": "Disk almost full on DB-1", "dedup_key": "disk-db1", "severity": "warning"},
        {"summary": "replication lag", "dedup_key": "lag", "labels": {"instance": "db-1:9187"}},
        {
            "summary": "queue depth",
            "dedup_key": "queue",
            "service": "queue",
            "labels": {"alertname": "Depth"},
        },
        {"summary": "100% done_", "dedup_key": "literal", "labels": {"alertname": "Odd"}},
    ]
    for alert in alerts:
        answer = api.post(f"/api/v1/alerts?key={generic_key}", json={"severity": "info", **alert})
        assert answer.status_code == 202, answer.text

    def found(search: str) -> list[str]:
        answer = api.get("/api/v1/alerts", params={"search": search}, headers=viewer)
        assert answer.status_code == 200, answer.text
        return sorted(alert["dedup_key"] for alert in answer.json()["items"])

    assert found("db-1") == ["disk-db1", "lag"]  # the summary (any case) and a label's value
    assert found("QUEUE") == ["queue"]  # the service and the key
    assert found("depth") == ["queue"]
    assert found("alertname") == ["literal", "queue"]  # label names too
    # % and _ are plain characters, not wildcards.
    assert found("100%") == ["literal"] and found("e_") == ["literal"] and found("%") == ["literal"]
    assert found("nothing like it") == []
    # With other filters: all must hold.
    answer = api.get("/api/v1/alerts", params={"search": "db-1", "severity": "warning"}, headers=viewer)
    assert [a["dedup_key"] for a in answer.json()["items"]] == ["disk-db1"]
    for bad in ("", "x" * 201):
        assert api.get("/api/v1/alerts", params={"search": bad}, headers=viewer).status_code == 422


def test_search_matches_label_names_and_values_not_their_json(
    api: TestClient, generic_key: str, viewer: dict[str, str]
) -> None:
    """The labels are stored as JSON; ``{`` or ``"`` matched every alert with labels, ``:`` and ``,`` most."""
    alerts = [
        {"summary": "one", "dedup_key": "a", "labels": {"host": "web-1", "env": "prod"}},
        {"summary": "two", "dedup_key": "b", "labels": {"path": 'C:\\data "x"', "café": "naïve"}},
        {"summary": "three", "dedup_key": "c"},
    ]
    for alert in alerts:
        answer = api.post(f"/api/v1/alerts?key={generic_key}", json={"severity": "info", **alert})
        assert answer.status_code == 202, answer.text

    def found(search: str) -> list[str]:
        answer = api.get("/api/v1/alerts", params={"search": search, "limit": 500}, headers=viewer)
        assert answer.status_code == 200, answer.text
        return sorted(alert["dedup_key"] for alert in answer.json()["items"])

    for syntax in ("{", "}", '":"', '","', "[", '{"host"'):
        assert found(syntax) == [], syntax
    assert found(",") == []
    assert found('"') == ["b"]  # in a value
    assert found(":") == ["b"]
    assert found("\\data") == ["b"]  # not as JSON escapes it (\\)
    assert found('"x"') == ["b"]
    assert found("Café") == found("naïve") == ["b"]  # names and values as written (any ASCII case)
    assert found("HOST") == found("web-") == found("prod") == ["a"]


def test_a_service_filter_naming_nothing_known_is_refused(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    """A typo (``--service paymnets``) answered "0 of 0" and read as an all-clear; ``--source`` and
    ``--integration`` already refused theirs."""
    sent = {"summary": "queue depth", "service": "queue-workers", "severity": "info"}
    assert api.post(f"/api/v1/alerts?key={generic_key}", json=sent).status_code == 202

    def listed(*services: str) -> list[str]:
        answer = api.get("/api/v1/alerts", params={"service": list(services)}, headers=viewer)
        assert answer.status_code == 200, answer.text
        return [alert["service"] for alert in answer.json()["items"]]

    assert listed("queue-workers") == ["queue-workers"]  # a service only alerts have had
    assert listed("payments") == []  # one of the org file's, with no alert yet
    for services in (["paymnets"], ["payments", "paymnets"]):
        refused = api.get("/api/v1/alerts", params={"service": services}, headers=viewer)
        assert refused.status_code == 422, refused.text
        assert "unknown service 'paymnets'" in refused.json()["error"]["message"]
        assert "payments" in refused.json()["error"]["message"]  # what the org file has
