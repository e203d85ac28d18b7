from __future__ import annotations

from pydantic import BaseModel, Field

from warroom.incidents.schemas import Assessment


class SeverityRead(BaseModel):
    id: str
    name: str
    rank: int = Field(description="0 is the most severe.")
    definition: str
    examples: list[str]
    response_target: str = Field(description="e.g. 5m, 2h, or 'next business day'.")
    response_target_seconds: int | None
    escalation: str
    communication: str
    page: bool
    status_page: bool
    customer_notification: bool
    update_every: str | None


class SuggestRequest(BaseModel):
    assessment: Assessment
    services: list[str] = Field(default_factory=list, description="Affected services from the org file.")


class SuggestResponse(BaseModel):
    severity: str
    name: str
    reasons: list[str]
    matched: dict[str, list[str]] = Field(description="Every level that some rule matched, with its reasons.")
