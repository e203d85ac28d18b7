"""What a running Warroom holds: settings, the database, and the org file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session

from warroom import wiring
from warroom.db import Database, utcnow
from warroom.orgconfig import OrgConfig, load_org_config
from warroom.settings import Settings


@dataclass
class AppContext:
    settings: Settings
    db: Database
    org: OrgConfig
    # When ``org`` was read: at start, or at the last reload (``warroom.reload``).
    org_loaded_at: datetime = field(default_factory=utcnow)
    # The newest reload announced in the database (``config_reloads``) that this process has followed.
    reloads_seen: int = 0
    # Follows a reload another process announced, now (``reload.ReloadWatcher.catch_up``), when this process
    # follows announced reloads at all: a worker calls it before running jobs another process may have
    # enqueued under a newer org file.
    catch_up_reloads: Callable[[], object] | None = None

    def __post_init__(self) -> None:
        wiring.load()
        self.db.set_session_info(context=self)

    @classmethod
    def from_settings(cls, settings: Settings) -> AppContext:
        org = load_org_config(settings.config)
        db = Database.from_settings(settings)
        return cls(settings=settings, db=db, org=org)


def context_of(session: Session) -> AppContext:
    """The app context a session was opened from: event subscribers use it to read the org file."""
    context = session.info.get("context")
    if not isinstance(context, AppContext):
        raise RuntimeError("this session was not opened from an AppContext's database")
    return context
