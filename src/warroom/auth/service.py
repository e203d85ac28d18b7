from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from warroom.auth.models import ApiToken, IntegrationKey, Role
from warroom.auth.schemas import Principal, TokenCreated, TokenRead, TokenRevoked
from warroom.db import get_or_404, utcnow
from warroom.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from warroom.fields import visible_line

TOKEN_PREFIX = "wr_"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_name(name: str) -> str:
    """A token's or an integration's name, trimmed: a token's is who acts with it (timelines, note
    ownership), an integration's is what timelines and lists say an alert came from. Visible text on one line,
    no control or direction-changing characters that would make one name print as another (or lay out a
    terminal), and at most 200 characters (what the column holds). Active tokens' names are unique
    (``create_token``); integrations may share one."""
    try:
        name = visible_line(name)
    except ValueError as exc:
        raise InvalidInput(f"name {exc}", {"field": "name"}) from None
    if len(name) > 200:
        raise InvalidInput("name must be at most 200 characters", {"field": "name"})
    return name


def create_token(session: Session, *, name: str, role: Role) -> TokenCreated:
    """A new token. Its name must not be an active token's: a token is known by its name where it acts
    (a note's author, who may edit it, a timeline's performer), so a second token of that name could edit the
    first one's notes. A revoked token's name can be given again."""
    name = check_name(name)
    _ensure_name_free(session, name)
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, role=role, token_hash=hash_secret(secret), prefix=secret[:10])
    try:
        # A SAVEPOINT: a request creating the same name at once (the check above saw neither) loses on the
        # partial unique index (uq_api_tokens_active_name) and gets the same 409, its transaction usable.
        with session.begin_nested():
            session.add(token)
            session.flush()
    except IntegrityError:
        _ensure_name_free(session, name)
        raise
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


def _ensure_name_free(session: Session, name: str) -> None:
    taken = session.scalar(
        select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)).limit(1)
    )
    if taken is not None:
        raise Conflict(
            f"an active token is already named {name!r} (id {taken}): tokens act under their names (a note's "
            "author edits it), so the name cannot be given twice; choose another, or revoke that token first",
            {"field": "name", "token": taken},
        )


def list_tokens(session: Session) -> list[TokenRead]:
    rows = session.scalars(select(ApiToken).order_by(ApiToken.id))
    return [TokenRead.model_validate(row) for row in rows]


def revoke_token(session: Session, *, token_id: int) -> TokenRevoked:
    """Idempotent, as acknowledging is: a token revoked already is answered as it is, ``unchanged``."""
    token = get_or_404(session, ApiToken, token_id, f"token with id {token_id}")
    unchanged = token.revoked_at is not None
    if not unchanged:
        token.revoked_at = utcnow()
    revoked = TokenRevoked.model_validate(token)
    revoked.unchanged = unchanged
    return revoked


def authenticate(session: Session, secret: str | None) -> Principal:
    if not secret:
        raise Unauthorized("a token is required: send 'Authorization: Bearer <token>'")
    secret_hash = hash_secret(secret)
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == secret_hash))
    if token is None:
        is_key = session.scalar(
            select(IntegrationKey.id).where(
                (IntegrationKey.key_hash == secret_hash) | (IntegrationKey.previous_key_hash == secret_hash)
            )
        )
        if is_key is not None:
            # A common mix-up: both are long random strings printed once.
            raise Unauthorized(
                "the token is not valid: it is an integration key, which alert sources send; the API takes "
                "an API token (warroom token create --name NAME --role viewer|responder|admin)"
            )
        raise Unauthorized("the token is not valid")
    if token.revoked_at is not None:
        raise Unauthorized("the token was revoked")
    return Principal(name=token.name, role=token.role, token_id=token.id)


def require(principal: Principal, needed: Role) -> Principal:
    if not principal.role.allows(needed):
        raise Forbidden(
            f"this needs the {needed.value} role; the token {principal.name!r} has {principal.role.value}"
        )
    return principal
