"""What a running Warroom holds: settings, the database, and the org file."""

from __future__ import annotations

from dataclasses import dataclass

from warroom import wiring
from warroom.db import Database
from warroom.orgconfig import OrgConfig, load_org_config
from warroom.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    org: OrgConfig

    def __post_init__(self) -> None:
        wiring.load()

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        org = load_org_config(settings.config)
        db = Database(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
        return cls(settings=settings, db=db, org=org)
