"""automation.email_rules: how to read the subjects of senders the built-in state words do not cover."""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from sqlalchemy import select
from typer.testing import CliRunner

from tests.conftest import EXAMPLE_CONFIG
from tests.peers import free_port
from warroom.alerts.adapters import from_email
from warroom.alerts.config import EmailRule
from warroom.alerts.models import Alert, AlertStatus
from warroom.app import create_app
from warroom.cli.main import app
from warroom.context import AppContext
from warroom.orgconfig import ConfigError, parse_org_config
from warroom.settings import Settings

VEEAM = {
    "name": "veeam",
    "sender": r"veeam@backup\.example",
    "subject": r"^\[(?P<state>\w+)\] Backup job '(?P<job>[^']+)'",
    "resolve": "success",
    "severity": {"Failed": "critical", "Warning": "warning"},
}
RULES = [EmailRule.model_validate(VEEAM)]


def mail(subject: str, sender: str = "veeam@backup.example", **headers: str) -> bytes:
    message = EmailMessage()
    message["From"] = f"Veeam <{sender}>"
    message["Subject"] = subject
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("3 of 4 VMs processed\n")
    return message.as_bytes()


def test_a_rule_reads_state_identity_and_labels_from_the_subject() -> None:
    failed = from_email(mail("[Failed] Backup job 'nightly' finished with 1 error"), RULES)
    warned = from_email(mail("[Warning] Backup job 'nightly' finished with 2 warnings"), RULES)
    succeeded = from_email(mail("[Success] Backup job 'nightly' finished"), RULES)
    assert (failed.action, failed.severity) == ("trigger", "critical")
    assert (warned.action, warned.severity) == ("trigger", "warning")
    assert succeeded.action == "resolve"
    # The state is left out of the identity: the three are one alert. The job is a label.
    assert failed.dedup_key == succeeded.dedup_key
    assert failed.labels == {
        "job": "nightly",
        "email_rule": "veeam",
        "alertname": "veeam",
        "from": "veeam@backup.example",
    }
    assert failed.dedup_key != from_email(mail("[Failed] Backup job 'weekly' finished"), RULES).dedup_key
    # Without the rule, nothing in these subjects says the state: every message is a firing alert of its own.
    built_in = from_email(mail("[Success] Backup job 'nightly' finished"))
    assert built_in.action == "trigger" and "email_rule" not in built_in.labels


def test_the_alert_group_names_the_alert_and_the_sender_chooses_the_rule() -> None:
    named = EmailRule.model_validate(
        {
            "name": "ups",
            "subject": r"UPS (?P<alert>\S+) (?P<state>on battery|on mains)",
            "resolve": "on mains",
        }
    )
    down = from_email(mail("UPS rack3 on battery since 10:02"), [named])
    up = from_email(mail("UPS rack3 on mains again"), [named])
    assert down.labels["alertname"] == "rack3" and (down.action, up.action) == ("trigger", "resolve")
    assert down.dedup_key == up.dedup_key
    # Another sender: the veeam rule does not apply, the next one does; headers still override.
    other = from_email(mail("[Failed] Backup job 'nightly'", sender="cron@db1.example"), [*RULES, named])
    assert "email_rule" not in other.labels
    overridden = from_email(mail("[Failed] Backup job 'nightly'", X_Warroom_Severity="info"), RULES)
    assert overridden.severity == "info"
    # A state the rule does not map takes the severity the subject's words say.
    unknown = from_email(mail("[Skipped] Backup job 'nightly': critical VM missing"), RULES)
    assert (unknown.action, unknown.severity) == ("trigger", "critical")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        ({**VEEAM, "subject": "[unclosed"}, "subject: bad regex"),
        ({**VEEAM, "sender": "(("}, "sender: bad regex"),
        ({**VEEAM, "subject": r"Backup job '(?P<job>[^']+)'"}, "name it with (?P<state>"),
        ({**VEEAM, "severity": {"Failed": "sev1"}}, "severity"),
        ({**VEEAM, "name": "Has Spaces"}, "name"),
    ],
)
def test_bad_email_rules_are_refused_by_config_check(rule: dict[str, Any], problem: str) -> None:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document.setdefault("automation", {})["email_rules"] = [rule]
    with pytest.raises(ConfigError) as error:
        parse_org_config(yaml.safe_dump(document))
    assert problem in str(error.value)


def test_email_rule_names_are_unique() -> None:
    document = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    document.setdefault("automation", {})["email_rules"] = [VEEAM, VEEAM]
    with pytest.raises(ConfigError) as error:
        parse_org_config(yaml.safe_dump(document))
    assert re.search(
        r"automation\.email_rules\[1\]\.name \(line \d+\): 'veeam' at line \d+ is already the name of the "
        r"email rule at line \d+ \(automation\.email_rules\[0\]\.name\)",
        str(error.value),
    )


@pytest.fixture
def ruled(context: AppContext) -> AppContext:
    context.org = context.org.model_copy(
        update={"automation": context.org.automation.model_copy(update={"email_rules": RULES})}
    )
    return context


@pytest.fixture
def mail_port(ruled: AppContext, settings: Settings) -> Iterator[int]:
    port = free_port()
    served = AppContext(
        settings=settings.model_copy(update={"mail_intake_port": port}), db=ruled.db, org=ruled.org
    )
    with TestClient(create_app(context=served)):
        yield port


def test_the_mail_intake_reads_by_the_rules(
    api: TestClient, ruled: AppContext, admin: dict[str, str], mail_port: int
) -> None:
    created = api.post("/api/v1/integrations", json={"name": "veeam", "type": "email"}, headers=admin)
    key = created.json()["key"]
    with smtplib.SMTP("127.0.0.1", mail_port, timeout=10) as client:
        for subject in ("[Failed] Backup job 'nightly' finished", "[Success] Backup job 'nightly' finished"):
            client.sendmail("veeam@backup.example", [f"{key}@a.example"], mail(subject))
    with ruled.db.read() as session:
        alert = session.scalars(select(Alert)).one()
        assert (alert.status, alert.severity, alert.labels["job"]) == (
            AlertStatus.resolved,
            "critical",
            "nightly",
        )


def test_config_test_alert_reads_a_saved_mail_by_the_rules(tmp_path: Path) -> None:
    config = EXAMPLE_CONFIG  # its veeam rule: Failed is an error there
    saved = tmp_path / "veeam.eml"
    saved.write_bytes(
        mail("[Failed] Backup job 'nightly' finished with 1 error", sender="veeam@backup.acme.example")
    )
    shown = CliRunner().invoke(app, ["config", "test-alert", str(saved), "--json", "--config", str(config)])
    assert shown.exit_code == 0, shown.output
    [preview] = json.loads(shown.stdout)
    assert (preview["source"], preview["severity"], preview["action"]) == ("email", "error", "trigger")
    assert preview["labels"]["job"] == "nightly" and preview["labels"]["email_rule"] == "veeam"
    recovery = tmp_path / "recovery.eml"
    recovery.write_bytes(mail("[Success] Backup job 'nightly' finished", sender="veeam@backup.acme.example"))
    shown = CliRunner().invoke(app, ["config", "test-alert", str(recovery), "--config", str(config)])
    text = " ".join(shown.stdout.split())
    assert "job=nightly" in text and "email_rule=veeam" in text
    assert "-> resolves the open alert with its dedup key" in text and "the rules do not run" in text
