"""Idempotency keys for API writes.

A client whose POST timed out cannot know whether it was carried out: retrying may send a war-room update
twice, not retrying may lose it. With an ``Idempotency-Key`` header (any string of 1-255 visible ASCII
characters, new for each intended write; the CLI sends one itself), the retry is safe:

- the key is recorded in the write's own transaction (a ``before_commit`` hook), so it exists exactly when the
  write does; the answer is kept beside it once sent;
- the same key again (same caller, same request) gets the kept answer, marked ``Idempotent-Replayed: true``,
  and changes nothing; if the answer was not kept (the server stopped in between), a 409 says the request was
  carried out;
- the same key with another request is refused (422); two at once: the second's write is rolled back (409).

Requests that fail before committing record nothing, so their retry runs again. Keys are kept at least a day
(the hourly retention job forgets older ones).
"""

from __future__ import annotations

import hashlib
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio.to_thread
import orjson
from sqlalchemy import event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from warroom.auth.models import IdempotentRequest
from warroom.context import AppContext
from warroom.db import unavailable, unavailable_reason, utcnow
from warroom.errors import IDEMPOTENCY_HEADER, IDEMPOTENCY_IN_USE_CODE, Conflict, error_body

log = logging.getLogger("warroom")

HEADER = IDEMPOTENCY_HEADER
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
KEEP_FOR = timedelta(days=1)
# Answers larger than this are not kept (a replay then says the request was carried out, as after a crash).
MAX_KEPT_ANSWER = 1024 * 1024


class IdempotencyKeyInFlight(Conflict):
    code = IDEMPOTENCY_IN_USE_CODE


@dataclass
class _Pending:
    caller: str
    key: str
    fingerprint: str
    method: str
    path: str
    recorded: bool = False
    # False for an answer that holds a secret shown once (a new token or key): it is never stored.
    keep_answer: bool = True


_pending: ContextVar[_Pending | None] = ContextVar("warroom_idempotency", default=None)


@event.listens_for(Session, "before_commit")
def _record_in_the_write(session: Session) -> None:
    """The first write transaction a keyed request commits records its key, in that transaction: a crash
    leaves both or neither. Sync routes run in a thread with a copy of the request's context, which holds
    the same ``_Pending``, so ``recorded`` is seen by the middleware."""
    pending = _pending.get()
    if pending is None or pending.recorded:
        return
    try:
        session.execute(
            insert(IdempotentRequest).values(
                caller=pending.caller,
                key=pending.key,
                fingerprint=pending.fingerprint,
                method=pending.method,
                path=pending.path[:2000],
                created_at=utcnow(),
            )
        )
    except IntegrityError:
        # Another request with this key committed first (PostgreSQL waited for it): this one's write is
        # rolled back whole, and it says so.
        raise IdempotencyKeyInFlight(
            f"another request with this {HEADER} was carried out at the same time; send it again to get "
            "that one's answer"
        ) from None
    pending.recorded = True


async def answer_holds_a_secret() -> None:
    """A route dependency: this route's answer holds a secret shown once (a new API token, integration key or
    signing secret), which only its hash may be kept of. A retry with the key then learns that the write was
    made, not the secret (``SECRET_NOT_KEPT``)."""
    pending = _pending.get()
    if pending is not None:
        pending.keep_answer = False


# The content type a kept answer is marked with when its body (a secret) was not kept.
SECRET_NOT_KEPT = "x-warroom/secret-not-kept"


def caller_of(authorization: str) -> str | None:
    """The sha256 of a Bearer token, or None without one (the route answers 401 on its own)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return hashlib.sha256(value.strip().encode()).hexdigest()


def valid_key(key: str) -> bool:
    return 0 < len(key) <= MAX_KEY_LENGTH and all(33 <= ord(c) <= 126 for c in key)


def fingerprint(method: str, path: str, query: bytes, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def find(context: AppContext, caller: str, key: str) -> IdempotentRequest | None:
    with context.db.read() as session:
        return session.scalar(
            # Older than KEEP_FOR but not pruned yet still counts: the unique index holds it until then.
            select(IdempotentRequest).where(IdempotentRequest.caller == caller, IdempotentRequest.key == key)
        )


def keep_answer(
    context: AppContext, caller: str, key: str, status: int, body: bytes, content_type: str | None
) -> None:
    with context.db.write() as session:
        session.execute(
            update(IdempotentRequest)
            .where(IdempotentRequest.caller == caller, IdempotentRequest.key == key)
            .values(status_code=status, response=body, content_type=content_type)
        )


class IdempotencyMiddleware:
    """Applies ``Idempotency-Key`` to the API's POSTs made with a Bearer token (alert intake has its own
    dedup, and is answered before this runs)."""

    def __init__(self, app: ASGIApp, *, context: AppContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {name.decode("latin-1").lower(): value for name, value in scope["headers"]}
        raw_key = headers.get(HEADER.lower())
        caller = caller_of(headers.get("authorization", b"").decode("latin-1"))
        if raw_key is None or caller is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not valid_key(key):
            await _answer(
                send,
                400,
                error_body(
                    "invalid_idempotency_key",
                    f"{HEADER} must be 1-{MAX_KEY_LENGTH} visible ASCII characters (a UUID will do)",
                ),
            )
            return
        body, more = await _read_body(receive)
        method, path = scope["method"], scope["path"]
        request_fingerprint = fingerprint(method, path, scope.get("query_string", b""), body)
        try:
            earlier = await anyio.to_thread.run_sync(find, self.context, caller, key)
        except Exception as exc:
            if not unavailable(exc):
                raise
            log.warning("%s %s: database unavailable: %s", method, path, unavailable_reason(exc))
            await _answer(send, 503, error_body("database_unavailable", "the database is unavailable; retry"))
            return
        if earlier is not None:
            await _replay(send, earlier, request_fingerprint)
            return

        pending = _Pending(caller, key, request_fingerprint, method, path)
        answer: dict[str, Any] = {"status": None, "headers": [], "body": bytearray(), "complete": False}
        body_given = False

        async def replayed_receive() -> Message:
            nonlocal body_given
            if not body_given:
                body_given = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await more()

        async def kept_send(message: Message) -> None:
            # Noted before it is sent: a client that gave up (the reason it will retry) must not cost the
            # answer its retry is owed.
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                if len(answer["body"]) <= MAX_KEPT_ANSWER:
                    answer["body"] += message.get("body", b"")
                answer["complete"] = not message.get("more_body", False)
            await send(message)

        token = _pending.set(pending)
        try:
            await self.app(scope, replayed_receive, kept_send)
        finally:
            _pending.reset(token)
            if pending.recorded and answer["complete"] and len(answer["body"]) <= MAX_KEPT_ANSWER:
                if not pending.keep_answer:
                    answer = {**answer, "body": b"", "headers": [(b"content-type", SECRET_NOT_KEPT.encode())]}
                await self._keep(method, path, caller, key, answer)

    async def _keep(self, method: str, path: str, caller: str, key: str, answer: dict[str, Any]) -> None:
        content_type = next(
            (value.decode("latin-1") for name, value in answer["headers"] if name.lower() == b"content-type"),
            None,
        )
        try:
            await anyio.to_thread.run_sync(
                keep_answer, self.context, caller, key, answer["status"], bytes(answer["body"]), content_type
            )
        except Exception as exc:
            # The write stands; a retry is told it was carried out (409) instead of getting this answer.
            log.warning("%s %s: the answer to keep for its %s was not kept: %s", method, path, HEADER, exc)


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away: nothing to do
            return b"".join(chunks), receive
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), receive


async def _replay(send: Send, earlier: IdempotentRequest, request_fingerprint: str) -> None:
    if earlier.fingerprint != request_fingerprint:
        await _answer(
            send,
            422,
            error_body(
                "idempotency_key_reused",
                f"this {HEADER} was used at {earlier.created_at:%Y-%m-%d %H:%M:%S} UTC for another request "
                f"({earlier.method} {earlier.path}, or another body): use a new key for a new request",
            ),
        )
        return
    if earlier.content_type == SECRET_NOT_KEPT:
        await _answer(
            send,
            409,
            error_body(
                IDEMPOTENCY_IN_USE_CODE,
                f"the request with this {HEADER} was carried out at "
                f"{earlier.created_at:%Y-%m-%d %H:%M:%S} UTC; its answer held a secret that is shown once "
                "and not kept: find what it made in the list (tokens, integrations), and revoke or rotate it "
                "if the secret was lost",
            ),
        )
        return
    if earlier.status_code is None or earlier.response is None:
        await _answer(
            send,
            409,
            error_body(
                IDEMPOTENCY_IN_USE_CODE,
                f"the request with this {HEADER} was carried out at {earlier.created_at:%Y-%m-%d %H:%M:%S} "
                "UTC, but its answer is not at hand (it is still being sent, or the server stopped before "
                "keeping it): look at what it changed rather than sending it again",
            ),
        )
        return
    headers = [(REPLAYED_HEADER.lower().encode(), b"true")]
    if earlier.content_type:
        headers.append((b"content-type", earlier.content_type.encode("latin-1")))
    headers.append((b"content-length", str(len(earlier.response)).encode()))
    await send({"type": "http.response.start", "status": earlier.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": earlier.response})


async def _answer(send: Send, status: int, content: dict[str, Any]) -> None:
    body = orjson.dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
