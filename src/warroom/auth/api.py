from __future__ import annotations

from fastapi import APIRouter, Depends, status

from warroom.auth import idempotency, service
from warroom.auth.schemas import Principal, TokenCreate, TokenCreated, TokenRead, TokenRevoked
from warroom.deps import Admin, Context, RowId, Viewer

router = APIRouter(prefix="/api/v1", tags=["auth"])


@router.get("/whoami", response_model=Principal)
def whoami(principal: Viewer) -> Principal:
    return principal


@router.get("/tokens", response_model=list[TokenRead])
def list_tokens(context: Context, _: Admin) -> list[TokenRead]:
    with context.db.read() as session:
        return service.list_tokens(session)


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(idempotency.answer_holds_a_secret)],
)
def create_token(body: TokenCreate, context: Context, _: Admin) -> TokenCreated:
    with context.db.write() as session:
        return service.create_token(session, name=body.name, role=body.role)


@router.delete("/tokens/{token_id}", response_model=TokenRevoked)
def revoke_token(token_id: RowId, context: Context, _: Admin) -> TokenRevoked:
    with context.db.write() as session:
        return service.revoke_token(session, token_id=token_id)
