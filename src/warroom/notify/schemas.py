from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from warroom.notify.enums import DeliveryStatus
from warroom.paging import Page


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    channel: str
    channel_type: str
    recipient: str
    template: str
    subject: str
    body: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    incident: str | None = Field(default=None, description="INC-n, when the message is about an incident.")
    job_id: int | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> DeliveryRead:
        read = cls.model_validate(row)
        read.incident = f"INC-{row.incident_id}" if row.incident_id else None
        return read


class DeliveryPage(Page[DeliveryRead]): ...


class TestNotification(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(min_length=1, max_length=100)
    to: str = Field(default="", max_length=1000, description="Recipient; defaults to the channel's `to`.")
    note: str = Field(default="", max_length=2000)

    @field_validator("channel", "to")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()
