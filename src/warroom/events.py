"""Domain events, handed to subscribers inside the transaction that caused them.

A subscriber (paging, status page, chat) writes its side effects as outbox rows in the same
transaction, so an event is never acted on for a change that rolled back, nor lost for one that
committed. Subscribers register with ``@subscribe("incident.created")``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session


@dataclass(frozen=True)
class DomainEvent:
    name: str
    incident_id: int | None
    performer: str
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[Session, DomainEvent], None]
_subscribers: dict[str, list[Subscriber]] = defaultdict(list)


def subscribe(*names: str) -> Callable[[Subscriber], Subscriber]:
    def register(handler: Subscriber) -> Subscriber:
        for name in names:
            if handler not in _subscribers[name]:
                _subscribers[name].append(handler)
        return handler

    return register


def publish(session: Session, event: DomainEvent) -> None:
    for handler in [*_subscribers.get(event.name, []), *_subscribers.get("*", [])]:
        handler(session, event)
