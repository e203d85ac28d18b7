"""Multi-line text from outside (a customer's report, an alert's description, an update's message) is quoted
in every message that carries it: its lines cannot pass for the message's own ("Acknowledge: <a link>")."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import Recorder, SmtpServer
from warroom.app import create_app
from warroom.clock import clock
from warroom.context import AppContext
from warroom.db import Database
from warroom.incidents import service as incidents
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.notify import service as notify
from warroom.notify.config import (
    ConsoleChannel,
    EmailChannel,
    EmailSettings,
    TemplateOverride,
    check_notification_channels,
)
from warroom.orgconfig import load_org_config
from warroom.settings import Settings

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # carol is on call for platform-primary

FORGED = (
    "Payment page is down\n\n"
    "Commander: alice (already on it, no need to act)\n"
    "Acknowledge: https://evil.example/ack?t=steal\n\n\n\n"
    "\u2014 Acme Cloud incident response (https://evil.example)\n"
    "rtl \u202eelgoog.evil\u202c bell\x07 \x1b[31mred\x1b[0m zero\u200bwidth "
    "\u2066isolate\u2069 \u200emark\u200f"
    "\r\nSender: a carriage return\rLine: a bare one\u2028Separator: a line separator\x85NEL: next line"
)
HIDDEN = ("\u202e", "\u202c", "\x07", "\x1b", "\u200b", "\u2066", "\u2069", "\u200e", "\u200f", "\r", "\x85")


def body(message: EmailMessage, kind: str) -> str:
    part = message.get_body((kind,))
    assert part is not None
    # As the mail server received it: lines end in CRLF.
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


def assert_quoted(text: str, heading: str, own_prefixes: tuple[str, ...]) -> list[str]:
    """No line of ``text`` but a quoted one ("> …") is one of the sender's (the only lines that say where
    to acknowledge are Warroom's own), and no hidden character is left; the quotation is under ``heading``,
    every line of it starting "> " (or being ">"). Returns the lines quoted."""
    for character in HIDDEN:
        assert character not in text, repr(character)
    lines = text.splitlines()
    unquoted = [line for line in lines if not (line == ">" or line.startswith("> "))]
    for line in unquoted:
        if line.startswith("Acknowledge:"):
            assert line.startswith(own_prefixes), line
    forged = ("Commander: alice", "Sender:", "Line:", "Separator:", "NEL:")
    assert not [line for line in unquoted if "evil.example" in line or line.startswith(forged)], text
    start = lines.index(heading) + 1
    while not lines[start]:
        start += 1
    end = start
    while end < len(lines) and (lines[end] == ">" or lines[end].startswith("> ")):
        end += 1
    assert lines[start:end] and all(line in unquoted for line in lines[:start] + lines[end:]), text
    return [line[2:] for line in lines[start:end]]


@pytest.fixture
def paging_context(settings: Settings, smtp: SmtpServer) -> Iterator[AppContext]:
    """The example org file, its customer reports opening a P1 incident that pages platform-escalation; every
    one reached by email through a local SMTP server."""
    org = load_org_config(EXAMPLE_CONFIG).model_copy(deep=True)
    org.notification_channels = [
        EmailChannel(
            name="email",
            type="email",
            settings=EmailSettings(
                host="127.0.0.1", port=smtp.port, security="none", from_address="pager@acme.example"
            ),
        )
    ]
    for person in org.people:
        person.notification_rules = []
        person.contact_methods = []
    [rule] = [rule for rule in org.automation.rules if rule.name == "customer-reports"]
    assert rule.incident is not None
    rule.incident.severity = "P1"
    rule.page = "platform-escalation"
    settings = settings.model_copy(update={"public_url": "http://warroom.test"})
    context = AppContext(settings=settings, db=Database(settings.resolved_database_url), org=org)
    yield context
    context.db.dispose()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def test_a_customers_report_is_quoted_in_the_page_it_causes(
    paging_context: AppContext, smtp: SmtpServer
) -> None:
    clock.set(T0)
    with TestClient(create_app(context=paging_context)) as api:
        answer = api.post(
            "/api/v1/reports",
            json={"contact": "mallory@example.com", "description": FORGED, "affected_feature": "pay"},
        )
        assert answer.status_code == 202, answer.text
        worker = Worker(paging_context, name="mail-worker")
        while worker.run_once():
            pass
    [page] = smtp.sink.to("carol@acme.example")
    text = body(page, "plain")
    quoted = assert_quoted(text, "Summary:", ("Acknowledge: http://warroom.test/api/v1/ack/",))
    assert [line for line in text.splitlines() if line.startswith("Acknowledge: http://warroom.test/")]
    # The sender's lines are all there, in order, quoted: blank runs made one, hidden characters gone.
    assert quoted[:7] == [
        "Customer report (pay): Payment page is down",
        "",
        "Payment page is down",
        "",
        "Commander: alice (already on it, no need to act)",
        "Acknowledge: https://evil.example/ack?t=steal",
        "",
    ]
    assert quoted[8] == "rtl elgoog.evil bell [31mred[0m zerowidth isolate mark"
    assert quoted[9:] == [
        "Sender: a carriage return",
        "Line: a bare one",
        "Separator: a line separator",
        "NEL: next line",
    ]
    html = body(page, "html")
    quotation = re.search(r"<blockquote[^>]*>(.*?)</blockquote>", html, re.S)
    assert quotation is not None, html
    shown = quotation.group(1).split("<br>")
    assert "Commander: alice (already on it, no need to act)" in shown  # each line a line of its own
    assert "Acknowledge: https://evil.example/ack?t=steal" in shown
    assert "\u2014 Acme Cloud incident response (https://evil.example)" in shown
    for character in HIDDEN:
        assert character not in html, repr(character)


@pytest.fixture
def incident_id(context: AppContext) -> int:
    with context.db.write() as session:
        incident = incidents.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title="Checkout failing", severity="P1", summary=FORGED, commander="Bob"),
            performer="alice",
        )
        return incident.id


def send_and_deliver(app: AppContext, **kwargs: object) -> None:
    with app.db.write() as session:
        notify.send(session, **kwargs)  # type: ignore[arg-type]
    assert Worker(app).run_once() == 1


def test_slack_shows_the_summary_as_a_block_quote(
    context: AppContext, recorder: Recorder, incident_id: int
) -> None:
    clock.set(T0)
    send_and_deliver(
        context,
        channel="slack",
        to="",
        template="page",
        context={"ack_url": "http://warroom.test/api/v1/ack/7.x"},
        incident_id=incident_id,
    )
    [request] = recorder.to("/slack")
    payload = json.loads(request.body)
    text = payload["blocks"][1]["text"]["text"]
    # Slack's text is escaped (& < >), its quote marker with it: "&gt; " starts each quoted line.
    unescaped = text.replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&")
    assert_quoted(unescaped, "Summary:", ("Acknowledge: http://warroom.test/api/v1/ack/",))


def test_an_updates_message_is_quoted_in_email_and_webhook(
    context: AppContext, recorder: Recorder, smtp_port: int, incident_id: int
) -> None:
    clock.set(T0)
    update = {"message": FORGED, "audience": "customers", "sender": "alice"}
    send_and_deliver(
        context,
        channel="ops-webhook",
        to="",
        template="incident_update",
        context=update,
        incident_id=incident_id,
    )
    [request] = recorder.to("/hook")
    text = json.loads(request.body)["text"]
    heading = f"Update on INC-{incident_id} (P1, investigating, commander Bob):"
    quoted = assert_quoted(text, heading, ())
    assert "Acknowledge: https://evil.example/ack?t=steal" in quoted
    assert text.rstrip().splitlines()[-2:] == [
        "Sent by alice to customers.",
        "— Acme Cloud incident response",
    ]
    with SmtpServer(smtp_port) as smtp:
        send_and_deliver(
            context,
            channel="email",
            to="updates@acme.example",
            template="incident_update",
            context=update,
            incident_id=incident_id,
        )
        [message] = smtp.sink.messages
    assert_quoted(body(message, "plain"), heading, ())
    html = body(message, "html")
    assert "<br>Commander: alice (already on it, no need to act)<br>" in html
    assert "\x1b" not in html and "\u202e" not in html


def test_an_org_files_template_can_quote_text_and_config_check_knows_the_filter(
    context: AppContext, incident_id: int, capsys: pytest.CaptureFixture[str]
) -> None:
    override = TemplateOverride(text="{{ incident.title }}\n{{ incident.summary | quoted }}\nEnd.")
    console = ConsoleChannel(name="ops-console", type="console", templates={"page": override})
    context.org = context.org.model_copy(update={"notification_channels": [console]})
    # config check compiles it with the filters it is rendered with: no "no filter named 'quoted'".
    assert check_notification_channels(context.org) == []
    send_and_deliver(
        context, channel="ops-console", to="", template="page", context={}, incident_id=incident_id
    )
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[1] == "Checkout failing" and lines[-1] == "End."
    assert all(line == ">" or line.startswith("> ") for line in lines[2:-1])
