"""The README's org-file snippets work as written: each parses on its own (a whole file) or, a fragment,
merged into the example org file whose services and policies it names (its sections replacing the example's).
A QA round found the Configuration section's sample refused by ``config check``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from warroom.orgconfig import ConfigError, OrgConfig, parse_org_config

README = Path(__file__).resolve().parent.parent / "README.md"
# Snippets of other programs' files (Alertmanager's, Prometheus' rules) are not org files.
ORG_SECTIONS = set(OrgConfig.model_fields)


def _org_snippets() -> list[str]:
    snippets = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)
    return [
        snippet
        for snippet in snippets
        if isinstance(data := yaml.safe_load(snippet), dict) and set(data) <= ORG_SECTIONS
    ]


def _merged_into_example(snippet: str) -> str:
    example: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    for section, value in yaml.safe_load(snippet).items():
        if isinstance(value, dict) and isinstance(example.get(section), dict):
            example[section].update(value)
        else:
            example[section] = value
    return yaml.safe_dump(example, sort_keys=False)


def test_the_readme_has_org_snippets() -> None:
    assert len(_org_snippets()) >= 10


@pytest.mark.parametrize("snippet", _org_snippets(), ids=lambda snippet: snippet.splitlines()[0][:40])
def test_a_readme_org_snippet_is_taken(snippet: str) -> None:
    try:
        parse_org_config(snippet, "README.md")
    except ConfigError as alone:
        try:
            parse_org_config(_merged_into_example(snippet), "README.md merged into the example")
        except ConfigError as merged:
            pytest.fail(f"on its own: {alone}\nmerged into the example: {merged}")
