from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from warroom.auth.enums import Role


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class TokenRevoked(TokenRead):
    unchanged: bool = Field(
        default=False,
        description="True when the token was revoked already: this request changed nothing "
        "(revoked_at is when it was).",
    )


class TokenCreated(TokenRead):
    token: str = Field(description="The secret; shown once.")


class Principal(BaseModel):
    """Who is making a request."""

    name: str
    role: Role
    token_id: int | None = None
