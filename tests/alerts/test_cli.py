"""Admin commands for integration keys, run in-process against the test database."""

from __future__ import annotations

from typer.testing import CliRunner

from warroom.cli.main import app


def test_integration_create_list_revoke(database_url: str) -> None:
    runner = CliRunner()
    created = runner.invoke(
        app,
        [
            "integration",
            "create",
            "--name",
            "prometheus",
            "--type",
            "alertmanager",
            "--database-url",
            database_url,
        ],
    )
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert len(key) == 32 and all(c in "0123456789abcdef" for c in key)
    listed = runner.invoke(app, ["integration", "list", "--json", "--database-url", database_url])
    assert listed.exit_code == 0, listed.output
    assert '"prometheus"' in listed.stdout and key not in listed.stdout
    bad_type = runner.invoke(
        app, ["integration", "create", "--name", "x", "--type", "nagios", "--database-url", database_url]
    )
    assert bad_type.exit_code == 2
    revoked = runner.invoke(app, ["integration", "revoke", "1", "--database-url", database_url])
    assert revoked.exit_code == 0, revoked.output
    assert "revoked integration 1 (prometheus)" in revoked.stdout
    missing = runner.invoke(app, ["integration", "revoke", "99", "--database-url", database_url])
    assert missing.exit_code == 1
