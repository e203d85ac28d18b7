"""``warroom token list`` (a command that only reads the database) with a data directory that is not there
yet but could be made: it says there is no database there, as before, and leaves no directory behind (it
tries whether the directory could be made, to say so when it cannot: tests/test_fixf2_settings.py)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from warroom.cli.main import app


def test_a_data_directory_that_could_be_made_is_not_made_by_token_list(tmp_path: Path) -> None:
    data_dir = tmp_path / "not-yet" / "data"
    runner = CliRunner(
        env={"COLUMNS": "200", "WARROOM_DATABASE_URL": None, "WARROOM_DATA_DIR": str(data_dir)}
    )
    result = runner.invoke(app, ["token", "list"])
    assert result.exit_code == 1, result.output
    assert f"no database at {data_dir / 'warroom.db'}" in result.output
    assert "warroom db upgrade" in result.output
    assert list(tmp_path.iterdir()) == []
