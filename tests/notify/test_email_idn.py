"""Email to an internationalised address through a mail server without SMTPUTF8: the domain goes as IDNA
(``xn--…``) in the envelope and the headers; a non-ASCII name before the @ cannot go at all, a dead letter at
once rather than eight retries of SMTPNotSupportedError."""

from __future__ import annotations

from tests.notify.test_delivery import START, delivery, send
from tests.peers import SmtpServer
from warroom.clock import clock
from warroom.context import AppContext
from warroom.jobs.worker import Worker
from warroom.notify.models import DeliveryStatus


def test_an_internationalised_domain_goes_as_idna(context: AppContext, smtp_port: int) -> None:
    clock.set(START)
    delivery_id = send(context, channel="email", to="user@bücher.example", template="test")
    with SmtpServer(smtp_port) as smtp:
        assert Worker(context).run_once() == 1
    sent = delivery(context, delivery_id)
    assert (sent.status, sent.attempts, sent.last_error) == (DeliveryStatus.sent, 1, None)
    assert smtp.sink.envelopes == [("incidents@acme.example", ["user@xn--bcher-kva.example"])]
    [message] = smtp.sink.messages
    assert message["To"] == "user@xn--bcher-kva.example"


def test_a_non_ascii_local_part_is_a_dead_letter_at_once(context: AppContext, smtp_port: int) -> None:
    clock.set(START)
    alone = send(context, channel="email", to="jörg@acme.example", template="test")
    with SmtpServer(smtp_port) as smtp:
        assert Worker(context).run_once() == 1
        dead = delivery(context, alone)
        assert (dead.status, dead.attempts) == (DeliveryStatus.dead, 1)
        assert "'jörg@acme.example' has a non-ASCII name before the @" in (dead.last_error or "")
        assert "does not offer SMTPUTF8" in (dead.last_error or "")
        assert smtp.sink.messages == []
        # With another recipient the message goes to that one, and the one it could not go to is named.
        mixed = send(context, channel="email", to="ops@bücher.example, jörg@acme.example", template="test")
        assert Worker(context).run_once() == 1
    sent = delivery(context, mixed)
    assert sent.status == DeliveryStatus.sent
    assert smtp.sink.envelopes == [("incidents@acme.example", ["ops@xn--bcher-kva.example"])]
    assert "jörg@acme.example (553 the recipient " in (sent.last_error or "")


def test_a_server_with_smtputf8_takes_the_address_as_it_is(context: AppContext, smtp_port: int) -> None:
    clock.set(START)
    delivery_id = send(context, channel="email", to="jörg@bücher.example", template="test")
    with SmtpServer(smtp_port, smtputf8=True) as smtp:
        assert Worker(context).run_once() == 1
    assert delivery(context, delivery_id).status == DeliveryStatus.sent
    assert smtp.sink.envelopes == [("incidents@acme.example", ["jörg@bücher.example"])]
