"""Text search in lists (``alerts list --search``): one fold of case and Unicode forms, computed the same on
SQLite and PostgreSQL, so that a search finds the same rows on both.

Both the search text and the stored text are folded, then the folded search text is looked for literally
(``%`` and ``_`` are plain characters) in the folded stored text. The fold is NFKC, then lowercase, with what
makes lowercase into case folding (Python's ``casefold``) for the letters people write: ``ß``/``ẞ`` are ``ss``
(``STRASSE`` finds ``Straße``) and Greek final sigma is sigma (``ΟΔΟΣ`` finds ``οδος``). One departs from
``casefold`` on purpose: Turkish dotted capital ``İ`` is a plain ``i`` (``istanbul`` finds ``İSTANBUL``),
where ``casefold`` gives ``i`` and a combining dot, which only that spelling finds. NFKC makes a decomposed
``é`` (e and U+0301) the precomposed one, and full-width or ligature forms (``ﬁ``) plain letters.

SQLite's own LIKE folds ASCII letters only, so SQLite calls ``fold`` (registered on each connection as
``warroom_fold`` by ``warroom.db``); PostgreSQL computes the same with ``normalize``/``lower``/``replace``
(``lower`` as the database's locale has it: a UTF-8 one, such as C.UTF-8 or en_US.UTF-8, folds every script;
the plain C locale folds ASCII only).
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import LargeBinary, String, case, cast, func, literal_column
from sqlalchemy.orm import QueryableAttribute
from sqlalchemy.sql.elements import ColumnElement

# A column (``Alert.summary``) or any text expression.
TextValue = ColumnElement[Any] | QueryableAttribute[Any]

FOLD_FUNCTION = "warroom_fold"

# What lowercase leaves apart and case folding does not (after NFKC, which already takes ligatures, the long
# s, the micro sign and the like to their plain letters): sharp s and Greek final sigma (to sigma), replaced
# after lowercasing, on both databases alike.
_AFTER_LOWER = (("ß", "ss"), ("\u03c2", "\u03c3"))


def fold(text: str) -> str:
    """``text`` as searches compare it (see the module's docstring)."""
    if text.isascii():  # most alerts: NFKC changes nothing, lowercase is all
        return text.lower()
    # Before lowering: Python's lower() (full mapping) makes İ "i" and a combining dot, PostgreSQL's (simple
    # mapping, under glibc) a plain "i".
    lowered = unicodedata.normalize("NFKC", text).replace("İ", "i").lower()
    for letter, folded in _AFTER_LOWER:
        lowered = lowered.replace(letter, folded)
    return lowered


def fold_sql_value(value: Any) -> Any:
    """``fold`` as SQLite calls it: NULL stays NULL; anything but text as it is (LIKE reads it as before)."""
    return fold(value) if isinstance(value, str) else value


def _constant(text: str) -> ColumnElement[str]:
    return literal_column("'" + text.replace("'", "''") + "'", String)


def folded(value: TextValue, dialect: str) -> ColumnElement[str]:
    """SQL giving ``fold`` of a text column or expression on this dialect ("sqlite" or "postgresql")."""
    if dialect != "postgresql":
        return getattr(func, FOLD_FUNCTION)(value, type_=String)  # type: ignore[no-any-return]
    lowered = func.lower(func.replace(_nfkc(value), _constant("İ"), _constant("i")))
    for letter, replacement in _AFTER_LOWER:
        lowered = func.replace(lowered, _constant(letter), _constant(replacement))
    return lowered


def _nfkc(value: TextValue) -> ColumnElement[str]:
    # normalize() costs several times what the check does, and most text is NFKC already.
    return case(
        (func.is_normalized(value, _constant("NFKC")), value),
        else_=func.normalize(value, literal_column("NFKC")),
    )


def holds(value: TextValue, text: str, dialect: str) -> ColumnElement[bool]:
    """Whether ``value`` holds ``text`` in any case and Unicode form (``text`` is taken literally)."""
    wanted = fold(text)
    # ASCII text (as many bytes as characters, most alerts' fields) needs no more than its ASCII letters
    # folded, which the database's own LIKE does: folding it costs a Python call a row on SQLite and
    # normalize() on PostgreSQL, several times the whole search.
    if dialect == "postgresql":
        ascii_only = func.octet_length(value) == func.char_length(value)
        as_is = func.lower(value).contains(wanted, autoescape=True)
    else:
        ascii_only = func.length(value) == func.length(cast(value, LargeBinary))
        as_is = value.contains(wanted, autoescape=True)  # SQLite's LIKE ignores ASCII case
    return case((ascii_only, as_is), else_=folded(value, dialect).contains(wanted, autoescape=True))
