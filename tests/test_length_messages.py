"""A text too long or too short is refused in characters, as pydantic words it for a str. A length given to an
optional text with its own check (``NonBlank | None = Field(max_length=255)``) was checked after validation
as of any sized value: "Value should have at most 255 items after validation"."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from typing import Annotated

import annotated_types
from fastapi.testclient import TestClient
from pydantic import BaseModel, TypeAdapter, ValidationError

import warroom
from tests.alerts.conftest import make_key
from warroom.context import AppContext


def models() -> Iterator[type[BaseModel]]:
    for module in pkgutil.walk_packages(warroom.__path__, "warroom."):
        if not module.name.endswith(("__main__", ".env")) and ".migrations." not in module.name:
            importlib.import_module(module.name)
    pending = list(BaseModel.__subclasses__())
    while pending:
        model = pending.pop()
        pending.extend(model.__subclasses__())
        if model.__module__.startswith("warroom."):
            yield model


def test_every_text_length_is_counted_in_characters() -> None:
    worded_as_items = []
    for model in set(models()):
        for name, field in model.model_fields.items():
            longest = next(
                (m.max_length for m in field.metadata if isinstance(m, annotated_types.MaxLen)), None
            )
            shortest = next(
                (m.min_length for m in field.metadata if isinstance(m, annotated_types.MinLen)), 0
            )
            if longest is None and not shortest:
                continue
            adapter = TypeAdapter(Annotated[field.annotation, *field.metadata])
            for text in ["x" * (longest + 1)] if longest is not None else []:
                try:
                    adapter.validate_python(text)
                except ValidationError as exc:
                    if any("items" in error["msg"] for error in exc.errors()):
                        worded_as_items.append(f"{model.__module__}.{model.__name__}.{name}")
            if shortest:
                try:
                    adapter.validate_python("")
                except ValidationError as exc:
                    if any("items" in error["msg"] for error in exc.errors()):
                        worded_as_items.append(f"{model.__module__}.{model.__name__}.{name} (short)")
    assert worded_as_items == []


def test_a_long_dedup_key_is_refused_in_characters(api: TestClient, context: AppContext) -> None:
    refused = api.post(
        f"/api/v1/alerts?key={make_key(context, 'generic')}", json={"summary": "s", "dedup_key": "k" * 256}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["details"] == [
        {"field": "dedup_key", "message": "String should have at most 255 characters"}
    ]
