"""Imports every domain's tables so that ``metadata`` is complete (for Alembic and tests)."""

from warroom.alerts import models as alert_models
from warroom.auth import models as auth_models
from warroom.db import Base
from warroom.incidents import models as incident_models

metadata = Base.metadata

__all__ = ["alert_models", "auth_models", "incident_models", "metadata"]
