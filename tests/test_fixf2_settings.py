"""Settings an operator can get wrong end the command with one line naming the setting, rather than being
taken and going wrong later: a port bound modulo 65536, a synchronous level SQLite reads as NORMAL, an
interval of inf that kills a worker thread, a public URL no link can be made from, a data directory that
cannot be made."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import uvicorn
from click.testing import Result
from pydantic import ValidationError
from typer.testing import CliRunner

from warroom.cli.main import app
from warroom.db import create_db_engine
from warroom.settings import DirectoryUnusable, Settings


@pytest.fixture(autouse=True)
def _never_serving(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``serve`` that took a setting it should have refused fails here rather than listening for ever."""

    def started(*_args: object, **options: object) -> None:
        raise AssertionError(f"serve started with {options}")

    monkeypatch.setattr(uvicorn, "run", started)


def _invoke(command: list[str], **env: str | None) -> Result:
    runner = CliRunner(env={"COLUMNS": "200", "WARROOM_DATABASE_URL": None, **env})
    return runner.invoke(app, command)


def _one_line_failure(result: Result) -> str:
    """A command that ended with one line of error (exit 1), not a traceback; that line."""
    assert result.exit_code == 1, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# -- the port ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("port", [0, 65536, 99999, -1])
def test_a_port_out_of_range_is_refused(port: int) -> None:
    with pytest.raises(ValidationError, match="port"):
        Settings(port=port)


def test_the_ports_at_the_ends_of_the_range_are_taken() -> None:
    assert Settings(port=1).port == 1
    assert Settings(port=65535).port == 65535


def test_serve_refuses_warroom_port_out_of_range_in_one_line(tmp_path: Path) -> None:
    said = _one_line_failure(_invoke(["serve"], WARROOM_PORT="99999", WARROOM_DATA_DIR=str(tmp_path)))
    assert "WARROOM_PORT" in said and "65535" in said and "99999" in said, said
    assert not (tmp_path / "warroom.db").exists()  # refused before anything was made


@pytest.mark.parametrize("port", ["85589", "0", "65536"])
def test_serve_refuses_a_port_option_out_of_range(tmp_path: Path, port: str) -> None:
    result = _invoke(["serve", "--port", port], WARROOM_DATA_DIR=str(tmp_path))
    assert result.exit_code == 2, result.output  # a usage error, as any option's
    said = " ".join(result.output.split())
    assert "--port" in said and ("65535" in said or "1" in said), said
    assert not (tmp_path / "warroom.db").exists()


# -- SQLite's synchronous level ----------------------------------------------------------------------


@pytest.mark.parametrize("level", ["FULLL", "full!", "2", "", "NORMAL; DROP TABLE alerts"])
def test_an_unknown_synchronous_level_is_refused(level: str) -> None:
    with pytest.raises(ValidationError, match="OFF, NORMAL, FULL, EXTRA"):
        Settings(sqlite_synchronous=level or " ")


@pytest.mark.parametrize(("given", "pragma"), [("off", 0), ("Normal", 1), ("FULL", 2), ("extra", 3)])
def test_the_synchronous_levels_are_taken_in_any_case_and_reach_sqlite(
    tmp_path: Path, given: str, pragma: int
) -> None:
    settings = Settings(sqlite_synchronous=given, data_dir=tmp_path)
    assert settings.sqlite_synchronous == given.upper()
    engine = create_db_engine(
        f"sqlite:///{tmp_path / 'warroom.db'}", sqlite_synchronous=settings.sqlite_synchronous
    )
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == pragma
    finally:
        engine.dispose()


def test_an_engine_made_without_settings_refuses_an_unknown_level_too(tmp_path: Path) -> None:
    # SQLite itself reads FULLL as NORMAL (1), silently: the engine must not pass it on.
    with pytest.raises(ValueError, match="OFF, NORMAL, FULL, EXTRA"):
        create_db_engine(f"sqlite:///{tmp_path / 'warroom.db'}", sqlite_synchronous="FULLL")
    assert not (tmp_path / "warroom.db").exists()


def test_db_upgrade_refuses_an_unknown_synchronous_level_in_one_line(tmp_path: Path) -> None:
    result = _invoke(["db", "upgrade"], WARROOM_SQLITE_SYNCHRONOUS="FULLL", WARROOM_DATA_DIR=str(tmp_path))
    said = _one_line_failure(result)
    assert "WARROOM_SQLITE_SYNCHRONOUS" in said and "FULLL" in said, said
    assert not (tmp_path / "warroom.db").exists()


# -- intervals and timeouts: finite, bounded ------------------------------------------------------------

FLOAT_SETTINGS = sorted(name for name, field in Settings.model_fields.items() if field.annotation is float)


def test_the_float_settings_are_the_ones_checked_here() -> None:
    assert "worker_poll_interval" in FLOAT_SETTINGS and len(FLOAT_SETTINGS) >= 8, FLOAT_SETTINGS


@pytest.mark.parametrize("name", FLOAT_SETTINGS)
@pytest.mark.parametrize("value", ["inf", "1e400", "nan", "-inf", "1e12"])
def test_no_float_setting_takes_inf_nan_or_an_unbounded_value(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"WARROOM_{name.upper()}", value)
    with pytest.raises(ValidationError, match=name):
        Settings()


def test_the_worker_refuses_an_infinite_poll_interval_in_one_line(tmp_path: Path) -> None:
    result = _invoke(["worker", "--once"], WARROOM_WORKER_POLL_INTERVAL="inf", WARROOM_DATA_DIR=str(tmp_path))
    said = _one_line_failure(result)
    assert "WARROOM_WORKER_POLL_INTERVAL" in said and "finite" in said, said


def test_a_poll_interval_of_an_hour_is_still_taken() -> None:
    assert Settings(worker_poll_interval=3600).worker_poll_interval == 3600


# -- the public URL ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "notaurl",
        "warroom.example.com",
        "ftp://warroom.example.com",
        "https://",
        "http:///path",
        "https://warroom.example.com:99999",
        "https://warroom.example.com/?next=1",
        "https://warroom.example.com/#top",
        "javascript:alert(1)",
    ],
)
def test_a_public_url_that_is_not_an_absolute_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="public_url"):
        Settings(public_url=url)


@pytest.mark.parametrize(
    "url",
    ["https://warroom.example.com", "http://10.0.0.5:8080", "https://example.com/warroom/", "HTTPS://X.EU"],
)
def test_an_absolute_http_public_url_is_taken_as_it_is(url: str) -> None:
    settings = Settings(public_url=url)
    assert settings.public_url == url and settings.base_url == url


def test_serve_refuses_a_public_url_that_is_not_one_in_one_line(tmp_path: Path) -> None:
    said = _one_line_failure(_invoke(["serve"], WARROOM_PUBLIC_URL="notaurl", WARROOM_DATA_DIR=str(tmp_path)))
    assert "WARROOM_PUBLIC_URL" in said and "http" in said and "notaurl" in said, said


# -- the data directory ----------------------------------------------------------------------------------


def _unusable_data_dirs(tmp_path: Path) -> dict[str, Path]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    return {"a file": a_file, "under a file": a_file / "data", "under /proc": Path("/proc/nope")}


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["worker", "--once"], ["serve", "--no-worker"], ["token", "list"]]
)
@pytest.mark.parametrize("case", ["a file", "under a file", "under /proc"])
def test_a_data_directory_that_cannot_be_made_ends_the_command_in_one_line(
    tmp_path: Path, command: list[str], case: str
) -> None:
    data_dir = _unusable_data_dirs(tmp_path)[case]
    said = _one_line_failure(_invoke(command, WARROOM_DATA_DIR=str(data_dir)))
    assert f"the directory {data_dir} cannot be made" in said, said
    assert "WARROOM_DATA_DIR" in said, said


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory all the same")
def test_a_data_directory_under_a_read_only_one_ends_the_command_in_one_line(tmp_path: Path) -> None:
    parent = tmp_path / "read-only"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        said = _one_line_failure(_invoke(["db", "upgrade"], WARROOM_DATA_DIR=str(parent / "data")))
    finally:
        parent.chmod(0o755)
    assert "cannot be made" in said and "ermission denied" in said, said


@pytest.mark.parametrize("case", ["a file", "under a file", "under /proc"])
def test_the_secret_key_in_a_data_directory_that_cannot_be_made_says_why_in_one_line(
    tmp_path: Path, case: str
) -> None:
    # On PostgreSQL the data directory holds only the secret key: the same check, the same line.
    data_dir = _unusable_data_dirs(tmp_path)[case]
    with pytest.raises(DirectoryUnusable) as raised:
        Settings(data_dir=data_dir).resolved_secret_key()
    said = str(raised.value)
    assert said.startswith(f"the directory {data_dir} cannot be made") and "\n" not in said, said
