"""A report whose body cannot be read is answered as the intake answers one: 400 invalid_payload, saying why.
FastAPI's own answers were a 422 "1: JSON decode error" and a 400 bad_request with no reason."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from warroom.alerts.models import Alert
from warroom.context import AppContext

JSON = {"Content-Type": "application/json"}
TOO_DEEP = b"[" * 100_000 + b"]" * 100_000


def stored(context: AppContext) -> int:
    with context.db.read() as session:
        return session.scalar(select(func.count()).select_from(Alert)) or 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            b"{",
            "the body is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2",
        ),
        (b'{"contact": "ann",\n "x": }', "the body is not valid JSON: Expecting value: line 2 column 7"),
        (
            b'{"contact": "caf\xe9"}',
            "the body is not valid JSON: it is not UTF-8 (invalid continuation byte)",
        ),
        (TOO_DEEP, "the body is nested too deeply"),
        (b"", "the body is empty"),
    ],
)
def test_a_report_that_is_not_json_is_answered_as_the_intake_answers(
    api: TestClient,
    context: AppContext,
    generic_key: str,
    responder: dict[str, str],
    body: bytes,
    message: str,
) -> None:
    if body:
        intake = api.post(f"/api/v1/alerts?key={generic_key}", content=body, headers=JSON)
        assert intake.status_code == 400 and intake.json()["error"]["code"] == "invalid_payload"
    for path, headers in (("/api/v1/reports", JSON), ("/api/v1/reports/internal", {**JSON, **responder})):
        refused = api.post(path, content=body, headers=headers)
        assert refused.status_code == 400, refused.text
        error = refused.json()["error"]
        assert error["code"] == "invalid_payload"
        assert error["message"].startswith(message), error
        assert error["details"][0]["field"] == "body"
    assert stored(context) == 0


def test_other_endpoints_keep_their_answer_and_gain_the_reason(
    api: TestClient, responder: dict[str, str]
) -> None:
    not_json = api.post("/api/v1/incidents", content=b"{not json", headers={**JSON, **responder})
    assert not_json.status_code == 422
    assert not_json.json()["error"]["code"] == "invalid"
    assert not_json.json()["error"]["message"] == (
        "the body is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)"
    )
    deep = api.post("/api/v1/incidents", content=TOO_DEEP, headers={**JSON, **responder})
    assert deep.status_code == 400
    assert deep.json()["error"] == {
        "code": "bad_request",
        "message": "the body is nested too deeply",
        "details": [{"field": "body", "message": "the body is nested too deeply"}],
    }


def test_a_body_not_sent_as_json_is_told_to_say_so(
    api: TestClient, context: AppContext, responder: dict[str, str]
) -> None:
    """``curl -d`` declares a form: FastAPI then reads no JSON, and its answer ("Input should be a valid
    dictionary") did not say what to change."""
    report = b'{"contact": "ann@example.com", "description": "x", "affected_feature": "checkout"}'
    for content_type in ["application/x-www-form-urlencoded", "text/plain"]:
        for path, headers in [("/api/v1/reports", {}), ("/api/v1/incidents", responder)]:
            refused = api.post(path, content=report, headers={**headers, "Content-Type": content_type})
            assert refused.status_code == 415, refused.text
            error = refused.json()["error"]
            assert error["code"] == "unsupported_media_type"
            assert error["message"] == (
                f"the body must be JSON, sent with Content-Type: application/json (it came as {content_type})"
            )
    assert stored(context) == 0
    assert api.post("/api/v1/reports", content=report, headers=JSON).status_code == 202


def test_a_public_report_cannot_lay_out_lines_of_its_own(api: TestClient, context: AppContext) -> None:
    """The one-line fields of the public form become one line: the feature (a label, and the summary)."""
    report = {
        "contact": "+49 30\n1234 5678",
        "description": "\n\nCheckout fails\u0085 at step 2\nwith a 500",
        "affected_feature": "<b>checkout</b>\nINJECT\u2028more",
    }
    assert api.post("/api/v1/reports", json=report).status_code == 202
    with context.db.read() as session:
        alert = session.scalars(select(Alert)).one()
        # Case-folded too: the label groups the reports of one feature.
        assert alert.summary == "Customer report (<b>checkout</b> inject more): Checkout fails"
        assert alert.labels["feature"] == "<b>checkout</b> inject more"
        assert alert.annotations["contact"] == "+49 30 1234 5678"
        assert alert.annotations["description"] == report["description"]  # kept as written
    # A contact made one line must still be a contact: the header it tried to lay out is refused.
    injected = {**report, "contact": "ann@example.com\nX-Injected: yes"}
    assert api.post("/api/v1/reports", json=injected).status_code == 422
    blank = {**report, "affected_feature": "\u200b\n"}
    assert api.post("/api/v1/reports", json=blank).status_code == 422


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/reports", '{"contact": "a", "description": "x\\u0000y"}', "description"),
        ("/api/v1/reports", '{"contact": "a\\u0000", "description": "x"}', "contact"),
        ("/api/v1/reports/internal", '{"description": "x", "labels": {"host": "db\\u0000"}}', "labels.host"),
    ],
)
def test_a_nul_in_a_report_is_a_422_naming_its_field(
    api: TestClient, context: AppContext, responder: dict[str, str], path: str, body: str, field: str
) -> None:
    """It was a 422 naming no field ("text must not contain NUL"): the sender of a public report has only
    the answer to go by. Named as the change events and the intake name it."""
    refused = api.post(path, content=body, headers={**JSON, **responder})
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "invalid"
    assert error["message"] == f"{field}: text must not contain NUL (\\u0000) characters"
    assert error["details"] == [{"field": field, "message": "text must not contain NUL (\\u0000) characters"}]
    assert stored(context) == 0
