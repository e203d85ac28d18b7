"""Imports every domain's tables so that ``metadata`` is complete (for Alembic and tests)."""

from warroom.alerts import models as alert_models
from warroom.auth import models as auth_models
from warroom.db import Base
from warroom.incidents import models as incident_models
from warroom.jobs import models as job_models
from warroom.notify import models as notify_models
from warroom.oncall import models as oncall_models

metadata = Base.metadata

__all__ = [
    "alert_models",
    "auth_models",
    "incident_models",
    "job_models",
    "metadata",
    "notify_models",
    "oncall_models",
]
