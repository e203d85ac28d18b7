"""A data directory whose name has what a URL reads as escapes or a query (%20, ?, #), spaces or non-ASCII
letters keeps its SQLite file in that directory, beside the secret key, and messages show the file's path
as it is on disk (to paste into ``ls``), not as a percent-encoded URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.db import Database, shown_location
from warroom.settings import Settings

NAMES = ["a%20b", "q?x", "h#x", "with space", "Zürich", "p%2Fq&r=s"]


@pytest.mark.parametrize("name", NAMES)
def test_the_database_is_made_in_the_data_dir_itself(tmp_path: Path, name: str) -> None:
    data_dir = tmp_path / name
    result = CliRunner(env={"WARROOM_DATABASE_URL": None, "WARROOM_DATA_DIR": str(data_dir)}).invoke(
        app, ["db", "upgrade"]
    )
    assert result.exit_code == 0, result.output
    assert (data_dir / "warroom.db").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == [name]  # nothing made beside it
    # The message names the file as it is, whole.
    assert f"{data_dir / 'warroom.db'}: migrated" in " ".join(result.output.split()), result.output


@pytest.mark.parametrize("name", NAMES)
def test_the_database_url_of_a_data_dir_names_its_file(tmp_path: Path, name: str) -> None:
    settings = Settings(data_dir=tmp_path / name)
    database = Database.from_settings(settings)
    try:
        assert database.file is not None
        assert Path(str(database.engine.url.database)) == (tmp_path / name / "warroom.db").resolve()
        settings.resolved_secret_key()
        assert (tmp_path / name / "secret_key").is_file()
    finally:
        database.dispose()


def test_a_sqlite_location_is_shown_as_its_path_and_other_urls_without_password() -> None:
    url = Settings(data_dir=Path("/var/lib/Zürich a%20b")).resolved_database_url
    assert shown_location(url) == "/var/lib/Zürich a%20b/warroom.db"
    assert shown_location("postgresql+psycopg://u:Secret@db/x") == "postgresql+psycopg://u:***@db/x"
    assert shown_location("sqlite://") == "sqlite://"
