"""``alerts list --search`` ignores case in every script and Unicode forms, and finds the same alerts on
SQLite and PostgreSQL: SQLite's LIKE folded ASCII letters only (``ÉCHEC`` missed ``échec`` there), and
neither database took ``STRASSE`` for ``Straße`` or a decomposed ``é`` for the precomposed one."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import String, literal, select

from tests.conftest import cli_through_the_app
from warroom import textsearch
from warroom.alerts.models import Alert
from warroom.cli.main import app
from warroom.context import AppContext

DECOMPOSED_E = "e\u0301"  # e and a combining acute accent, as some keyboards and macOS file names write é
FULLWIDTH_DB1 = "\uff24\uff22\uff11"  # DB1 in full-width letters, as CJK input methods may type it
DOTLESS_I = "\u0131"  # the Turkish dotless small i

ALERTS = {
    "de": {"summary": "Straße nach Rechenzentrum gesperrt"},
    "de-upper": {"summary": "HAUPTSTRASSE: GROẞE LAST"},
    "de-label": {"summary": "power", "labels": {"site": "Hauptstraße 5"}},
    "tr": {"summary": "İstanbul DC offline"},
    "tr-lower": {"summary": "link to istanbul-2 flapping"},
    "el": {"summary": "ΟΔΟΣ ΚΛΕΙΣΤΗ"},
    "el-lower": {"summary": "η οδος είναι κλειστή"},
    "fr": {"summary": "Échec de paiement"},
    "fr-decomposed": {"summary": f"{DECOMPOSED_E}chec du cache"},
    "fr-label": {"summary": "billing", "labels": {"région": "Île-de-France"}},
    "cjk": {"summary": "数据库连接失败"},
    "fullwidth": {"summary": f"ディスク満杯 {FULLWIDTH_DB1}"},
    "emoji": {"summary": "🔥 checkout down"},
    "literal": {"summary": "100% done_x"},
    "literal-accented": {"summary": "Überlast 90%_"},
}


def test_search_ignores_case_in_every_script_and_unicode_forms(
    api: TestClient, context: AppContext, generic_key: str, viewer: dict[str, str]
) -> None:
    for key, alert in ALERTS.items():
        sent = {"severity": "info", "dedup_key": key, **alert}
        answer = api.post(f"/api/v1/alerts?key={generic_key}", json=sent)
        assert answer.status_code == 202, answer.text
    with context.db.read() as session:  # stored as sent: the decomposed é is still two characters
        stored = session.scalars(select(Alert.summary).where(Alert.dedup_key == "fr-decomposed"))
        assert list(stored) == [f"{DECOMPOSED_E}chec du cache"]

    def found(search: str) -> list[str]:
        answer = api.get("/api/v1/alerts", params={"search": search, "limit": 500}, headers=viewer)
        assert answer.status_code == 200, answer.text
        return sorted(alert["dedup_key"] for alert in answer.json()["items"])

    # German: ß, its capital ẞ and SS are one letter to a search, in a summary or a label's value.
    for search in ("straße", "STRASSE", "Strasse", "STRAẞE"):
        assert found(search) == ["de", "de-label", "de-upper"], search
    assert found("große") == found("GROSSE") == ["de-upper"]
    # Turkish dotted capital İ is i: a search in either case finds both spellings.
    for search in ("İstanbul", "İSTANBUL", "istanbul", "ISTANBUL"):
        assert found(search) == ["tr", "tr-lower"], search
    # Greek: final sigma, small sigma and capital sigma are one letter.
    for search in ("ΟΔΟΣ", "οδος", "οδοσ", "ΟδοΣ"):
        assert found(search) == ["el", "el-lower"], search
    assert found("κλειστη") == ["el"]  # an accent is not a case: ή is not η
    assert found("ΚΛΕΙΣΤΉ") == ["el-lower"]
    # Accented letters, precomposed or decomposed, on either side.
    for search in ("ÉCHEC", "échec", f"{DECOMPOSED_E}chec", "E\u0301CHEC"):
        assert found(search) == ["fr", "fr-decomposed"], search
    assert found("ÎLE-DE-FRANCE") == found("RÉGION") == found("re\u0301gion") == ["fr-label"]
    assert found("ÜBERLAST") == ["literal-accented"]
    # Scripts without case, full-width forms and emoji.
    assert found("连接") == ["cjk"]
    assert found("db1") == found(FULLWIDTH_DB1) == ["fullwidth"]
    assert found("ﾃﾞｨｽｸ") == ["fullwidth"]  # half-width katakana
    assert found("🔥") == found("🔥 CHECKOUT") == ["emoji"]
    # % and _ are plain characters, not wildcards, in ASCII and in other text alike.
    assert found("%") == found("_") == ["literal", "literal-accented"]
    assert found("0%") == ["literal", "literal-accented"]
    assert found("100%") == found("e_") == found("E_X") == ["literal"]
    assert found("90%_") == found("ÜBERLAST 90%_") == ["literal-accented"]
    assert found("%_") == ["literal-accented"]
    assert found("s_raße") == found("stra%e") == found("ÉCH_C") == []


FOLDED = {
    "Straße": "strasse",
    "GROẞE": "grosse",
    "İSTANBUL": "istanbul",
    "I\u0307stanbul": "istanbul",  # a decomposed İ
    f"{DOTLESS_I}l{DOTLESS_I}k": f"{DOTLESS_I}l{DOTLESS_I}k",  # dotless i is a letter of its own
    "ΟΔΟΣ": "οδοσ",
    "οδος": "οδοσ",
    f"{DECOMPOSED_E}CHEC": "échec",
    FULLWIDTH_DB1: "db1",
    "ﬁle": "file",
    "数据库": "数据库",
    "🔥 Down": "🔥 down",
    "100%_": "100%_",
}


def test_both_databases_fold_text_as_python_does(context: AppContext) -> None:
    """The stored side is folded in SQL (a Python function on SQLite, an expression on PostgreSQL) and the
    search text in Python: each must give the other's answer, or a search misses on one database."""
    with context.db.read() as session:
        dialect = session.get_bind().dialect.name
        for text, expected in FOLDED.items():
            assert textsearch.fold(text) == expected, text
            in_sql = session.scalar(select(textsearch.folded(literal(text, String), dialect)))
            assert in_sql == expected, (dialect, text)


def test_alerts_list_search_on_the_command_line(
    api: TestClient, tokens: dict[str, str], generic_key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What an on-call engineer types: ``warroom alerts list --search ÉCHEC``."""
    runner = cli_through_the_app(api, tokens["viewer"], monkeypatch, "warroom.cli.alerts")
    for key, alert in ALERTS.items():
        sent = {"severity": "info", "dedup_key": key, **alert}
        assert api.post(f"/api/v1/alerts?key={generic_key}", json=sent).status_code == 202

    def listed(search: str) -> list[str]:
        result = runner.invoke(app, ["alerts", "list", "--json", "--search", search])
        assert result.exit_code == 0, result.output
        return sorted(alert["dedup_key"] for alert in json.loads(result.stdout)["items"])

    assert listed("ÉCHEC") == ["fr", "fr-decomposed"]
    assert listed("STRASSE") == ["de", "de-label", "de-upper"]
