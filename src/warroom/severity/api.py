from __future__ import annotations

from fastapi import APIRouter

from warroom.deps import Context, Viewer
from warroom.openapi import changes_nothing
from warroom.severity import service
from warroom.severity.schemas import SeverityRead, SuggestRequest, SuggestResponse

router = APIRouter(prefix="/api/v1/severities", tags=["severity"])


@router.get("", response_model=list[SeverityRead])
def list_severities(context: Context, _: Viewer) -> list[SeverityRead]:
    return service.list_severities(context.org)


@router.post("/suggest", response_model=SuggestResponse)
@changes_nothing
def suggest(body: SuggestRequest, context: Context, _: Viewer) -> SuggestResponse:
    # A read-only computation, so a viewer may ask.
    return service.suggest_severity(context.org, body.assessment, body.services)
