"""A peer's answer (a Slack or webhook body, a mail server's reply) reaches the worker's log in the error it
logs: as one line, its control characters shown as escapes (``warroom.loglines``)."""

from __future__ import annotations

from collections.abc import Callable

from tests.notify.test_delivery import START, delivery, open_incident, send
from tests.peers import Recorder, SmtpServer
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.models import DeliveryStatus

PEER_BODY = b"\x1b]0;PWNED\x07\x1b[2J\r\nX-Injected: yes"
PEER_BODY_SHOWN = "\\x1b]0;PWNED\\x07\\x1b[2J\\r\\nX-Injected: yes"


def test_a_peers_answer_is_logged_on_one_line(
    context: AppContext, recorder: Recorder, smtp_port: int, served_log: Callable[[], str]
) -> None:
    clock.set(START)
    incident_id = open_incident(context, commander=None)
    recorder.fail("/slack", 1, status=500, body=PEER_BODY)  # retried
    recorder.fail("/hook", 1, status=410, body=PEER_BODY)  # a dead letter at once
    to_slack = send(context, channel="slack", to="#payments", template="page", incident_id=incident_id)
    to_hook = send(context, channel="ops-webhook", to="ops", template="test")
    with SmtpServer(smtp_port) as smtp:
        smtp.sink.refuse["nobody@acme.example"] = "550 5.1.1 no such user\x1b]0;PWNED\x07"
        to_nobody = send(context, channel="email", to="nobody@acme.example", template="test")
        assert Worker(context).run_once() == 3
    assert delivery(context, to_slack).status == DeliveryStatus.failed
    assert delivery(context, to_hook).status == DeliveryStatus.dead
    assert delivery(context, to_nobody).status == DeliveryStatus.dead
    lines = served_log().splitlines()
    assert not any("\x1b" in line or "\x07" in line or "\r" in line for line in lines), lines
    assert not any(line.startswith("X-Injected") for line in lines), lines
    [slack] = [line for line in lines if "Slack answered 500" in line]
    assert slack.startswith("WARNING:     warroom.jobs: job ")
    assert f"Slack answered 500: {PEER_BODY_SHOWN}; retry at " in slack
    [hook] = [line for line in lines if "the webhook refused it with 410" in line]
    assert hook.startswith("ERROR:     warroom.jobs: job ") and hook.endswith(PEER_BODY_SHOWN)
    [mail] = [line for line in lines if "no such user" in line]
    assert mail.startswith("ERROR:     warroom.jobs: job ")
    assert "550 5.1.1 no such user\\x1b]0;PWNED\\x07" in mail
