"""Regular expressions that users write (the org file's conditions, enrichment, webhook formats, email rules,
the ``regex_search``/``regex_replace`` template filters, maintenance windows made through the API).

They run on RE2, whose matching takes time linear in the text whatever the pattern: a pattern such as
``(a|a)*b`` cannot stall alert intake the way Python's backtracking ``re`` lets it (each extra character
doubling the time). What RE2 cannot do in linear time it refuses when the pattern is compiled: backreferences
(``\\1``, ``(?P=name)``), lookahead and lookbehind (``(?=``, ``(?!``, ``(?<=``, ``(?<!``), atomic groups and
possessive repeats. Those patterns are refused where they are written (``config check``, a 422 from the API),
with ``RegexError`` saying why.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

import re2

# A pattern is short text a person wrote; a longer one is a mistake or an attack, and RE2's memory for one
# pattern is bounded too (``max_mem``: "pattern too large").
MAX_PATTERN_LENGTH = 4096
# What ``sub`` may build (characters): a replacement that repeats the text per match (``regex_replace('',
# value)``) is refused past this rather than allocating the square of the text.
MAX_RESULT_LENGTH = 1_000_000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is the caller's to report, not a line on stderr
_IGNORE_CASE = re2.Options()
_IGNORE_CASE.log_errors = False
_IGNORE_CASE.case_sensitive = False

# RE2's words for what it refuses, in a user's: (part of RE2's message, what the pattern uses).
_UNSUPPORTED = (
    ("invalid perl operator: (?=", "lookahead (?=...)"),
    ("invalid perl operator: (?!", "negative lookahead (?!...)"),
    ("invalid perl operator: (?<=", "lookbehind (?<=...)"),
    ("invalid perl operator: (?<!", "negative lookbehind (?<!...)"),
    ("invalid perl operator: (?>", "an atomic group (?>...)"),
    ("bad repetition operator: *+", "a possessive repeat (*+, ++, ?+)"),
    ("bad repetition operator: ++", "a possessive repeat (*+, ++, ?+)"),
    ("bad repetition operator: ?+", "a possessive repeat (*+, ++, ?+)"),
)


class RegexError(ValueError):
    """A pattern that is not a regular expression, or that needs what linear-time matching cannot do."""


class RegexMatch(Protocol):
    def group(self, group: int | str = 0, /) -> str | None: ...

    def groupdict(self, default: str | None = None) -> dict[str, str | None]: ...


def _explain(pattern: str, message: str) -> str:
    for fragment, what in _UNSUPPORTED:
        if message.startswith(fragment):
            return (
                f"{what} is not supported: patterns run on RE2, which matches in linear time and has no "
                "lookaround, backreferences, atomic groups or possessive repeats"
            )
    if message.startswith("invalid escape sequence: \\") and message[-1:].isdigit():
        return (
            f"a backreference ({message.rpartition(' ')[2]}) is not supported: patterns run on RE2, which "
            "matches in linear time and has no backreferences or lookaround"
        )
    if message == "invalid escape sequence: \\Z":
        return "\\Z is not supported: write \\z (end of text) or $"
    if message.startswith("invalid perl operator: (?P") and ("(?P=" in pattern or "(?P>" in pattern):
        return (
            "a backreference (?P=name) is not supported: patterns run on RE2, which matches in linear time "
            "and has no backreferences or lookaround"
        )
    if message.startswith("invalid perl operator: (?"):
        return f"{message} (supported inline flags: i, m, s, U; no x, a, u or L)"
    return message


def _sane(text: str) -> str:
    # RE2 reads UTF-8; a lone surrogate (from a JSON "\ud800") cannot be encoded, so it reads as "?" (one
    # character for one, so positions stay where they were).
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


class UserRegex:
    """A compiled user pattern: ``search``, ``fullmatch``, ``sub`` and ``groupindex`` as ``re`` has them."""

    __slots__ = ("_regexp", "pattern")

    def __init__(self, pattern: str, *, ignore_case: bool = False) -> None:
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise RegexError(f"pattern too long ({len(pattern)} characters; at most {MAX_PATTERN_LENGTH})")
        try:
            self._regexp: Any = re2.compile(_sane(pattern), _IGNORE_CASE if ignore_case else _OPTIONS)
        except re2.error as exc:
            raw = exc.args[0] if exc.args else str(exc)
            message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            raise RegexError(_explain(pattern, message)) from None
        self.pattern = pattern

    @property
    def groupindex(self) -> Mapping[str, int]:
        return dict(self._regexp.groupindex)

    def search(self, text: str) -> RegexMatch | None:
        found: RegexMatch | None = self._regexp.search(_sane(text))
        return found

    def fullmatch(self, text: str) -> RegexMatch | None:
        found: RegexMatch | None = self._regexp.fullmatch(_sane(text))
        return found

    def sub(self, replacement: str, text: str) -> str:
        """Every match replaced by ``replacement``, where ``\\1`` and ``\\g<name>`` are groups and ``\\n``
        and the like are escapes, as in ``re.sub``."""
        pieces = _template(replacement)
        built = 0

        def expand(found: Any) -> str:
            nonlocal built
            # Literal text at even places, group references (a number or a name) at odd ones.
            out = "".join(
                str(piece) if not place % 2 else (found.group(piece) or "")
                for place, piece in enumerate(pieces)
            )
            built += len(out)
            if built > MAX_RESULT_LENGTH:
                raise RegexError(f"the replaced text would pass {MAX_RESULT_LENGTH} characters")
            return out

        result: str = self._regexp.sub(expand, _sane(text))
        return result


@lru_cache(maxsize=256)
def _template(replacement: str) -> tuple[str | int, ...]:
    """``re.sub``'s replacement syntax as literal text and group references, alternating (re2's own
    ``expand`` garbles text that is not ASCII)."""
    pieces: list[str | int] = []
    literal: list[str] = []
    index = 0
    while index < len(replacement):
        char = replacement[index]
        if char != "\\" or index + 1 == len(replacement):
            literal.append(char)
            index += 1
            continue
        following = replacement[index + 1]
        group: str | int | None = None
        if following.isdigit() and following != "0":
            end = index + 2
            if end < len(replacement) and replacement[end].isdigit():
                end += 1
            group, index = int(replacement[index + 1 : end]), end
        elif following == "g" and replacement[index + 2 : index + 3] == "<":
            close = replacement.find(">", index + 3)
            if close < 0:
                raise RegexError("bad replacement: \\g< without >")
            name = replacement[index + 3 : close]
            group, index = (int(name) if name.isdigit() else name), close + 1
        else:
            escape = replacement[index : index + 2]
            literal.append(codecs.decode(escape, "unicode_escape") if following in "abfnrtv\\" else escape)
            index += 2
        if group is not None:
            pieces.append("".join(literal))
            literal = []
            pieces.append(group)
    pieces.append("".join(literal))
    return tuple(pieces)


@lru_cache(maxsize=1024)
def user_regex(pattern: str, *, ignore_case: bool = False) -> UserRegex:
    """A user's pattern, compiled once (``RegexError`` when it is refused)."""
    return UserRegex(pattern, ignore_case=ignore_case)
