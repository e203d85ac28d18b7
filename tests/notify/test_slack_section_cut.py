"""A message too long for a Slack section block (3000 characters, as sent: escaped) is cut before it is
escaped, at a word boundary, with "…", and keeps its end: who sent it, the acknowledge link, the signature."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.notify.test_delivery import START, open_incident
from tests.peers import Recorder
from warroom.clock import clock
from warroom.context import AppContext
from warroom.incidents import service as incidents
from warroom.incidents.schemas import IncidentCreate
from warroom.jobs.worker import Worker
from warroom.notify import service as notify
from warroom.notify.channels import SLACK_SECTION_LIMIT, slack_section_text

# Escaping makes "R&D <ops>" 19 characters of 9: the 3000th escaped character falls inside an entity.
LONG = " ".join(f"R&D <ops> word{n}" for n in range(400))
ENTITY = re.compile(r"&(?!amp;|lt;|gt;)")


def unescaped(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def slack_section(app: AppContext, recorder: Recorder, **kwargs: Any) -> str:
    with app.db.write() as session:
        notify.send(session, channel="slack", to="#payments", **kwargs)
    assert Worker(app).run_once() == 1
    [request] = recorder.to("/slack")
    payload = json.loads(request.body)
    full = unescaped(payload["text"])
    assert LONG in full  # the message's text, which notifications show, is whole
    section: str = payload["blocks"][1]["text"]["text"]
    return section


def test_a_long_update_is_cut_at_a_word_and_keeps_its_sender(context: AppContext, recorder: Recorder) -> None:
    clock.set(START)
    incident_id = open_incident(context, commander=None)
    update = {"message": LONG, "audience": "internal", "sender": "alice"}
    section = slack_section(
        context, recorder, template="incident_update", context=update, incident_id=incident_id
    )
    assert len(section) <= SLACK_SECTION_LIMIT
    assert len(section) > SLACK_SECTION_LIMIT - 40  # no more is lost than the last word that did not fit
    assert not ENTITY.search(section), section[-300:]
    start, cut, end = unescaped(section).partition("…")
    assert cut and end == "\n\nSent by alice to internal.\n— Acme Cloud incident response"
    assert start.startswith(f"Update on INC-{incident_id} (P1, investigating):\n\n> R&D <ops> word0 ")
    assert (start[start.index("> ") + 2 :] + " ") in LONG + " "  # ends with a whole word


def test_a_long_page_keeps_its_acknowledge_link(context: AppContext, recorder: Recorder) -> None:
    clock.set(START)
    with context.db.write() as session:
        incident_id = incidents.create_incident(
            session,
            org=context.org,
            data=IncidentCreate(title="Checkout failing", severity="P1", services=["payments"], summary=LONG),
            performer="alice",
        ).id
    ack = {"ack_url": "http://warroom.test/api/v1/ack/7.secret"}
    section = slack_section(context, recorder, template="page", context=ack, incident_id=incident_id)
    assert len(section) <= SLACK_SECTION_LIMIT and not ENTITY.search(section)
    shown = unescaped(section)
    assert "…\n\nServices: payments\n" in shown
    assert "\nAcknowledge: http://warroom.test/api/v1/ack/7.secret\n\n— Acme Cloud incident response" in shown


def test_section_text_within_the_limit() -> None:
    assert slack_section_text("a & b") == "a &amp; b"
    fits = "&" * 600  # 3000 escaped
    assert slack_section_text(fits) == "&amp;" * 600
    over = slack_section_text("&" * 601)  # no word to cut at: cut at a character, never inside an entity
    assert over == "&amp;" * 599 + "…"
    assert len(slack_section_text("x" * 5000 + "\n\n" + "y" * 2000)) == SLACK_SECTION_LIMIT  # no tail fits
