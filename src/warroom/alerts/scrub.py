"""Secrets taken out of the free text Warroom stores from outside, before it is stored: viewers read alerts,
and a failed job's output, a forwarded message or a webhook's description can hold what only an admin may
know. One scrubber for all of them (heartbeat output, email subjects, headers and bodies, the summary,
description and annotations of alerts from every intake):

- Warroom API tokens (``wr_`` and 43 URL-safe characters, ``auth.service.create_token``) → ``[token]``;
- integration keys (32 hex digits, ``auth.integrations``): the ones known to be in the text (an email's
  recipients, every active key found by ``active_keys_in``) in any case, and any 32 hex digits given as a
  key (``key=…``, ``routing_key: …``) → ``[key]``; other 32-digit hex (a checksum in a backup report) stays;
- passwords in URLs: ``scheme://user:password@host`` → ``scheme://user:***@host`` (the user information up
  to the last ``@`` before the host: a password may hold ``@``);
- the value given to a name of a secret → ``***`` (quotes kept): a name ending in ``password``,
  ``passwd``, ``pwd``, ``secret``, ``secret_key``, ``secret_access_key``, ``token`` or ``api_key`` (any case:
  ``PGPASSWORD``, ``MYSQL_PWD``, ``db_password``, ``client_secret``, ``GITHUB_TOKEN``, ``X_API_KEY``), then
  ``=`` or ``:`` (a query string, a line of shell, YAML, ``"password": "…"`` in JSON), its value bare or
  quoted (``PGPASSWORD="…"``, ``'…'``).

Each pattern is looked for only after a substring test that most texts fail (``wr_``, ``key``, ``://`` and
``@``; a piece of a secret's name and ``=`` or ``:``), so text with none of them costs a few ``in`` tests
(``scrub_event`` makes them once for all of an event's texts).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from warroom.auth.service import TOKEN_PREFIX, hash_secret

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

# What an integration key is kept as (and logged as: ``mail.RedactKeys``).
REDACTED_KEY = "[key]"
REDACTED_TOKEN = "[token]"
REDACTED_PASSWORD = "***"

# API tokens: the prefix and ``secrets.token_urlsafe(32)`` (43 characters); 32 or more is still one (a token
# cut short by a tool's line limit keeps most of its secret).
_TOKEN = re.compile(rf"(?<![A-Za-z0-9_-]){re.escape(TOKEN_PREFIX)}[A-Za-z0-9_-]{{32,}}")
# Integration keys are 32 hex digits; a key anywhere in a line, in any case (an MTA may have uppercased it).
KEY_IN_TEXT = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{32}(?![0-9a-fA-F])")
# 32 hex digits given as a key: ``?key=…``, ``routing_key=…``, ``"integration_key": "…"``, ``X-Key: …``.
_KEY_GIVEN = re.compile(
    r"(?i)(key[\"']?\s*[=:]\s*[\"']?)[0-9a-f]{32}(?![0-9a-f])",
)
# Hex digits that may hold a key, also inside a longer run ("sha256=00<key>ff"): each 32-digit window of a run
# is looked up, up to MAX_KEY_WINDOWS per text looked into (about 0.15 s of hashing; text of long hex dumps
# past it is looked into where a run is exactly 32 digits only).
_HEX_RUN = re.compile(r"[0-9a-fA-F]{32,}")
MAX_KEY_WINDOWS = 65_536
# ``scheme://user:password@`` (the user may be empty: ``redis://:pw@host``); the password runs to the last
# ``@`` before the host's path (``u:p@ss@host``: a password may hold ``@``).
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/?#@:]*):([^\s/?#]+)@")
# A secret's name (``PGPASSWORD``, ``MYSQL_PWD``, ``db_password``, ``client_secret``,
# ``AWS_SECRET_ACCESS_KEY``, ``GITHUB_TOKEN``, ``api_key``; in JSON quoted), ``=`` or ``:``, and its value:
# bare (to a space, ``&``, ``#``, ``;``, a quote, ``,`` or ``}``) or quoted.
_SECRET_VALUE = re.compile(
    r"""(?ix)
    (\b\w*(?:pass(?:word|wd)|pwd|secret(?:_access)?(?:_key)?|token|api[_-]?key)["']?[ \t]*[=:][ \t]*)
    ("(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s&\#;'",}]+)
    """
)
# What a secret's name holds (in either case), for the test before the pattern is looked for.
_SECRET_NAME_PIECES = ("ass", "ASS", "wd", "WD", "ecret", "ECRET", "oken", "OKEN", "ey", "EY")
# Values already taken out, kept as they are.
_REDACTED = frozenset({REDACTED_PASSWORD, REDACTED_KEY, REDACTED_TOKEN})


def _may_name_a_secret(text: str) -> bool:
    return ("=" in text or ":" in text) and any(piece in text for piece in _SECRET_NAME_PIECES)


def _redact_value(found: re.Match[str]) -> str:
    value = found.group(2)
    quote = value[0] if value[0] in "\"'" else ""
    if value.strip("\"'") in _REDACTED:
        return found.group(0)
    return f"{found.group(1)}{quote}{REDACTED_PASSWORD}{quote}"


def redact_keys(text: str, keys: Sequence[str]) -> str:
    """``text`` with each of ``keys`` (in any case: an MTA may change it) replaced by ``[key]``."""
    if not keys:
        return text
    found = re.compile("|".join(re.escape(key) for key in keys), re.IGNORECASE)
    return found.sub(REDACTED_KEY, text)


def might_hold_secrets(text: str) -> bool:
    """Whether ``scrub_text`` (without known keys) may change ``text``: the substrings its patterns need."""
    return (
        TOKEN_PREFIX in text
        or (("ey" in text or "EY" in text) and ("=" in text or ":" in text))
        or ("://" in text and "@" in text)
        or _may_name_a_secret(text)
    )


def scrub_text(text: str, keys: Sequence[str] = ()) -> str:
    """``text`` without the secrets it shows (module docstring): ``keys`` are integration keys known to be in
    it (an email's recipients, ``active_keys_in``'s)."""
    if keys:
        text = redact_keys(text, keys)
    if TOKEN_PREFIX in text:
        text = _TOKEN.sub(REDACTED_TOKEN, text)
    if ("ey" in text or "EY" in text) and _KEY_GIVEN.search(text):  # key, Key, KEY
        text = _KEY_GIVEN.sub(rf"\g<1>{REDACTED_KEY}", text)
    if "://" in text and "@" in text:
        text = _URL_PASSWORD.sub(rf"\1:{REDACTED_PASSWORD}@", text)
    if _may_name_a_secret(text):
        text = _SECRET_VALUE.sub(_redact_value, text)
    return text


def key_windows(texts: Iterable[str]) -> set[str]:
    """Every 32-digit window of the texts' runs of hex digits, lowercased: a run of exactly 32 always, the
    windows of longer runs up to MAX_KEY_WINDOWS in all."""
    windows: set[str] = set()
    budget = MAX_KEY_WINDOWS
    for text in texts:
        for run in _HEX_RUN.findall(text):
            run = run.lower()
            if len(run) == 32:
                windows.add(run)
                continue
            count = min(len(run) - 31, budget)
            windows.update(run[i : i + 32] for i in range(count))
            budget -= count
    return windows


def active_key_hashes(session: Session) -> set[str]:
    """The hashes of every integration key not revoked (its current key, and the one a rotation replaced):
    a few per integration, so one read, and each window of hex is looked up in memory."""
    from sqlalchemy import select

    from warroom.auth.models import IntegrationKey

    rows = session.execute(
        select(IntegrationKey.key_hash, IntegrationKey.previous_key_hash).where(
            IntegrationKey.revoked_at.is_(None)
        )
    )
    return {value for row in rows for value in row if value}


def active_keys_in(windows: Iterable[str], active: set[str]) -> list[str]:
    """Which of the hex ``windows`` (``key_windows``) are active integration keys (``active``: their hashes).
    Only an active key's own digits are taken out, as a 32-digit checksum in a backup report is no secret."""
    return sorted(w for w in windows if hash_secret(w) in active)


def scrub_with_active_keys(session: Session, text: str) -> str:
    """``scrub_text`` of ``text``, with every active integration key in it taken out too, wherever it stands
    (the database is read only when the text has a run of 32 hex digits)."""
    windows = key_windows([text])
    keys = active_keys_in(windows, active_key_hashes(session)) if windows else []
    return scrub_text(text, keys)


def scrub_event(event: Any) -> None:
    """Take secrets out of an alert event's free text, in place: its summary and its annotations' text (a
    description, a runbook note, a failed run's output, the strings in PagerDuty's custom details). Labels,
    the dedup key and links are identifiers, not prose, and are left as sent; the raw payload is kept whole
    as evidence and scrubbed when shown (``scrub_value``). Called for every event on the intake path: an
    event whose texts have none of the substrings the patterns need costs one set of ``in`` tests."""
    annotations = event.annotations
    texts = [event.summary]
    nested = False
    for value in annotations.values():
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, (dict, list)):  # PagerDuty's custom_details, a plain alert's details
            nested = True
            texts.extend(_strings(value))
    if not might_hold_secrets("\n".join(texts)):  # nearly every event: one set of tests for all its texts
        return
    event.summary = scrub_text(event.summary)
    for name, value in annotations.items():
        if isinstance(value, str) or nested:
            annotations[name] = scrub_value(value)


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, names included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for name, item in value.items():
            yield from _strings(name)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def scrub_value(value: Any) -> Any:
    """``value`` (a raw payload: JSON) with ``scrub_text`` applied to every string in it, names included."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_value(k): scrub_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(item) for item in value]
    return value
