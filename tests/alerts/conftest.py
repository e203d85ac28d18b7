from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from warroom.auth import integrations
from warroom.auth.models import IntegrationType
from warroom.context import AppContext

PAYLOADS = Path(__file__).parent / "payloads"


def payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text())


def make_key(context: AppContext, type_: str, name: str | None = None) -> str:
    with context.db.write() as session:
        return integrations.create_integration(
            session, name=name or f"{type_}-source", type=IntegrationType(type_)
        ).key


@pytest.fixture
def am_key(context: AppContext) -> str:
    return make_key(context, "alertmanager", "prometheus")


@pytest.fixture
def generic_key(context: AppContext) -> str:
    return make_key(context, "generic", "scripts")


@pytest.fixture
def pd_key(context: AppContext) -> str:
    return make_key(context, "pagerduty", "pd-shaped")
