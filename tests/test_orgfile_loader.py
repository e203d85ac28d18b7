"""The org file's YAML loader: libyaml's C parser when PyYAML has it (the pure-Python one took 1.0 s of a
16,600-line file's 1.5 s), with the same duplicate-key refusal, resolvers and error reports."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import EXAMPLE_CONFIG
from warroom import orgconfig
from warroom.orgconfig import ConfigError, OrgFileLoader, _syntax_problem, parse_org_config

needs_libyaml = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")


@needs_libyaml
def test_the_org_file_is_composed_by_libyaml() -> None:
    loader, root = orgconfig._compose(EXAMPLE_CONFIG.read_text())
    try:
        assert isinstance(loader, yaml.CSafeLoader) and isinstance(loader, OrgFileLoader)
        assert isinstance(root, yaml.MappingNode)
    finally:
        loader.dispose()
    # And what it builds is what PyYAML's own loader builds.
    assert parse_org_config(EXAMPLE_CONFIG.read_text()) == parse_org_config(
        EXAMPLE_CONFIG.read_text() + "# a\tcomment\n"
    )


@needs_libyaml
def test_a_key_given_twice_is_refused_with_its_lines_by_the_c_loader_too() -> None:
    text = "organization: Acme\nservices:\n  - name: api\n    tier: 1\n    tier: 2\norganization: Other\n"
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    problems = [(p.line, p.message) for p in caught.value.problems]
    assert [line for line, _ in problems] == [5, 6], problems
    assert "already given at line 4, column 5" in problems[0][1]
    assert "already given at line 1, column 1" in problems[1][1]


@pytest.mark.parametrize(
    "text",
    [
        "organization: Acme\tCloud\n",  # libyaml takes a tab inside a plain value; PyYAML never did
        "organization: [Acme\n",  # unclosed: reported in PyYAML's words, as before
        "organization: Acme\n---\norganization: Other\n",
    ],
)
def test_documents_libyaml_refuses_or_takes_differently_are_reported_as_pyyaml_did(text: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text)
    with pytest.raises(yaml.YAMLError) as pure:
        yaml.load(text, Loader=yaml.SafeLoader)
    [problem] = caught.value.problems
    # PyYAML's error, put in one line at the line where it starts (``_syntax_problem``).
    assert problem == _syntax_problem("<string>", text, pure.value)


def test_a_control_character_is_a_problem_report_not_a_crash() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_org_config("organization: Acme\x07\n")
    assert "#x0007" in caught.value.problems[0].message


@pytest.mark.parametrize("text", ["on_call: nobody\nn: 7\n", "on_call: nobody\nn: 7\nnote: 'a\tb'\n"])
def test_resolvers_added_on_the_loader_class_apply_on_both_paths(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Resolvers set on ``OrgFileLoader`` apply whether libyaml or PyYAML (a text with a tab) reads."""
    resolvers = {first: list(entries) for first, entries in OrgFileLoader.yaml_implicit_resolvers.items()}
    resolvers.setdefault("n", []).insert(0, ("tag:yaml.org,2002:null", re.compile(r"^nobody$")))
    monkeypatch.setattr(OrgFileLoader, "yaml_implicit_resolvers", resolvers)
    loader, root = orgconfig._compose(text)
    try:
        data = loader.construct_document(root)
    finally:
        loader.dispose()
    assert data["on_call"] is None and data["n"] == 7
    assert yaml.safe_load(text)["on_call"] == "nobody"  # PyYAML's own loaders untouched


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("x: " + "[" * 2000 + "]" * 2000 + "\n", 1),  # libyaml refuses it; PyYAML recursed
        ("x: 'a\tb'\ny: " + "[" * 900 + "]" * 900 + "\n", None),  # a tab: PyYAML reads it, and recursed
        ("services: " + "[" * 999 + "]" * 999 + "\n", None),  # libyaml reads it; its report recursed
    ],
)
def test_nesting_too_deep_is_one_problem_not_a_recursion_error(text: str, line: int | None) -> None:
    """A file nested thousands deep ended ``config check`` in a RecursionError traceback."""
    with pytest.raises(ConfigError) as caught:
        parse_org_config(text, "org.yaml")
    [problem] = caught.value.problems
    assert problem.line == line
    assert problem.message.startswith("lists and mappings are nested too deeply to read")
    assert problem.message.endswith(": an org file is never this deep; check the brackets")
