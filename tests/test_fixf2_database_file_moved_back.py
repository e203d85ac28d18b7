"""SQLite: the database file moved away and back under the running server (``mv warroom.db x; mv x
warroom.db``) is the same file: its -wal holds acknowledged transactions, and nothing may delete it."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3

import pytest
from fastapi.testclient import TestClient

from tests.alerts.conftest import make_key
from tests.test_database_file import assert_refused, database_path, deliver, stored_dedup_keys
from warroom.app import create_app
from warroom.context import AppContext


def test_a_database_file_moved_away_and_back_keeps_every_acknowledged_delivery(
    on_sqlite: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    context = on_sqlite
    path = database_path(context)
    moved = path.with_name("warroom.db.moved")
    wal = path.with_name(f"{path.name}-wal")
    key = make_key(context, "generic")
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        for number in range(3):
            assert deliver(api, key, f"before-{number}").status_code == 202
        assert wal.stat().st_size > 0  # the deliveries (and the integration) are in the WAL, not the file yet
        inode = path.stat().st_ino

        os.rename(path, moved)  # ``mv warroom.db warroom.db.moved`` under the running server
        # A request while it is away closes this server's connections to it (the last one to close used to
        # leave the -wal behind at the path, which the file's return then removed).
        for number in range(3):
            assert_refused(deliver(api, key, f"away-{number}"))
        before = {f"before-{number}" for number in range(3)}
        # The file moved away holds them on its own: its WAL was saved into it when it left (read as an
        # operator copying it elsewhere would, without the -wal it left at the old path).
        assert stored_dedup_keys(moved) == before
        os.rename(moved, path)  # and back: the same file (same inode)
        assert path.stat().st_ino == inode

        answers = [deliver(api, key, f"back-{number}").status_code for number in range(5)]
        assert answers == [202] * 5, answers  # 401 when the integration (in the WAL) was lost
        assert api.get("/healthz").status_code == 200
        # Read by another process while the server still runs: every acknowledged delivery is there.
        expected = before | {f"back-{number}" for number in range(5)}
        assert stored_dedup_keys(path) == expected
    assert stored_dedup_keys(path) == expected
    assert not any("removed what the replaced one left" in message for message in caplog.messages)
    assert any("is at its path again (the same file" in message for message in caplog.messages)


def test_a_removed_database_file_restored_in_its_place_is_a_new_file_even_with_the_old_inode_number(
    on_sqlite: AppContext, caplog: pytest.LogCaptureFixture
) -> None:
    """``rm warroom.db`` (its -wal left behind), then a backup copied in: the file system may give the new
    file the removed one's inode number once nothing has it open. It is still another file: the removed one's
    WAL is not read as its own, and the log says it was replaced, not that the old one is back."""
    context = on_sqlite
    path = database_path(context)
    wal = path.with_name(f"{path.name}-wal")
    key = make_key(context, "generic")
    backup = path.with_name("backup.db")
    caplog.set_level(logging.INFO, logger="warroom")
    with TestClient(create_app(context=context)) as api:
        assert deliver(api, key, "in-backup").status_code == 202
        sqlite3.connect(path).backup(sqlite3.connect(backup))
        assert deliver(api, key, "after-backup").status_code == 202
        inode = path.stat().st_ino
        path.unlink()  # ``rm warroom.db``: the -wal and -shm stay
        assert wal.exists()
        for number in range(5):  # each closes this server's connections to the removed file as they come up
            assert_refused(deliver(api, key, f"while-removed-{number}"))
        shutil.copyfile(backup, path)  # ext4 tends to give it the removed file's inode number
        answers = [deliver(api, key, f"restored-{number}").status_code for number in range(8)]
        assert set(answers) <= {202, 503} and answers[-1] == 202, answers
        reused = path.stat().st_ino == inode  # said when an assertion fails: the case this is about
    accepted = {f"restored-{number}" for number, status in enumerate(answers) if status == 202}
    # The backup's deliveries and those since; nothing of the removed file's WAL (after-backup) mixed in.
    assert stored_dedup_keys(path) == {"in-backup", *accepted}
    messages = caplog.messages
    assert any("new connections use the Warroom database now at that path" in m for m in messages), reused
    assert not any("is at its path again" in m for m in messages), reused
