"""Field types the domains' request schemas share."""

from __future__ import annotations

import ast
import difflib
import re
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime

from warroom.errors import NotFound


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Text that must say something: whitespace alone is refused (and kept as sent otherwise).
NOT_BLANK = AfterValidator(_not_blank)
NonBlank = Annotated[str, NOT_BLANK]

# An optional one with a length gives it inside, before the check:
#     Annotated[str, StringConstraints(max_length=255), NOT_BLANK] | None
# A Field(max_length=...) on the union is checked only after validation, as of any sized value: "Value should
# have at most 255 items after validation", where a str says "String should have at most 255 characters".


# Line and paragraph separators, controls, and formatting characters (direction overrides, zero-width
# spaces): in a name or title they make one thing print as another, or as nothing. The zero-width joiner
# stays: emoji sequences need it.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
_ZERO_WIDTH_JOINER = "\u200d"


def visible_line(value: str) -> str:
    """One line of visible text, trimmed: a person's name, a title. ValueError says what is wrong."""
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    if any(c != _ZERO_WIDTH_JOINER and unicodedata.category(c) in _HIDDEN_CATEGORIES for c in value):
        raise ValueError("must not contain control or formatting characters (line breaks, direction marks)")
    return value


def one_line(text: str) -> str:
    """``text`` made a ``visible_line`` (an alert's summary becoming an incident's title): line breaks and
    hidden characters become spaces, runs of space one. May be empty."""
    shown = "".join(
        " " if c != _ZERO_WIDTH_JOINER and unicodedata.category(c) in _HIDDEN_CATEGORIES else c for c in text
    )
    return " ".join(shown.split())


# A name or a title: trimmed, visible, on one line. Optional with a length: as NOT_BLANK above.
VISIBLE_LINE = AfterValidator(visible_line)
VisibleLine = Annotated[str, VISIBLE_LINE]


# The instants people and schedules talk about; far-off ones only overflow date arithmetic.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)


def in_era(value: datetime) -> datetime:
    """``value`` in UTC, if it lies from 1970 to 2200; ValueError otherwise (year 1 at +14:00 is not even a
    UTC instant)."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise ValueError(f"must be between {EARLIEST.year} and {LATEST.year}")
    return utc


# A time with its offset, from 1970 to 2200, read as UTC.
Instant = Annotated[AwareDatetime, AfterValidator(in_era)]


# Row ids are 32-bit on PostgreSQL; larger numbers can never name a row, so they are refused up front.
MAX_ROW_ID = 2_147_483_647


def parse_row_ref(ref: str | int, prefix: str, what: str) -> int:
    """The number in ``12`` or ``PREFIX-12``; NotFound, with how references look, for anything else."""
    text = str(ref).strip().upper().removeprefix(f"{prefix}-")
    # ASCII digits only (not the Arabic-Indic or fullwidth ones int() reads), few enough for a 32-bit id
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise NotFound(f"no {what} {ref!r}: ids look like 12 or {prefix}-12")
    return int(text)


# Links are shown to people as links: only web and mail addresses, never javascript: or data: URLs.
def safe_link(href: str) -> bool:
    """A web address with a host, or a mail address (cheap: every Alertmanager alert carries links)."""
    start = href[:8].lower()
    if start.startswith("mailto:"):
        return len(href) > 7
    if not start.startswith(("http://", "https://")):
        return False
    host_at = 8 if start.startswith("https://") else 7
    return len(href) > host_at and href[host_at] not in "/?#"


def validation_message(error: Mapping[str, Any]) -> str:
    """A pydantic error's words without the "Value error, " it puts before a validator's own message."""
    return str(error["msg"]).removeprefix("Value error, ")


def validation_entry(field: str, error: Mapping[str, Any], *, index: int | None = None) -> dict[str, Any]:
    """A pydantic error as an entry of an error answer's ``details``: the field, the ``index`` of the value at
    fault when the field is a repeated query parameter, the message and, for a value not among those a field
    takes, the ``allowed`` ones (a list, as the services give them)."""
    entry: dict[str, Any] = {"field": field}
    if index is not None:
        entry["index"] = index
    entry["message"] = validation_message(error)
    expected = (error.get("ctx") or {}).get("expected")
    allowed = _expected_values(expected) if isinstance(expected, str) else None
    if allowed:
        entry["allowed"] = allowed
    return entry


def _expected_values(expected: str) -> list[Any] | None:
    """The values of pydantic's ``expected`` ("'a', 'b' or 'c'": the reprs of a literal's or an enum's
    values), or None when it is not such a list."""
    head, said_or, last = expected.rpartition(" or ")
    try:
        values = ast.literal_eval(f"[{head}, {last}]" if said_or else f"[{expected}]")
    except (ValueError, SyntaxError):
        return None
    return values if isinstance(values, list) else None


def not_in_file(name: str, kind: str, known: list[str]) -> str:
    """An org file's reference to a ``kind`` it does not declare: the nearest name when one is close (a
    typo), else the names it has."""
    message = (
        f"{name!r} is not an {kind} in this file"
        if kind[0] in "aeiou"
        else f"{name!r} is not a {kind} in this file"
    )
    nearest = closest(name, known)
    if nearest is not None:
        return f"{message}; did you mean {nearest!r}?"
    if not known:
        return f"{message} (no {kind} is defined)"
    shown = ", ".join(known[:20]) + (f" and {len(known) - 20} more" if len(known) > 20 else "")
    return f"{message} (known: {shown})"


def closest(name: str, known: Iterable[str], *, cutoff: float = 0.75) -> str | None:
    """The name of ``known`` that ``name`` most likely misspells (None: none is close enough). Every name as
    close as the cutoff is ranked, not only difflib's best three: among numbered names many are equally close
    (svc-025, svc-125, svc-250, svc-295 for svc-25), and the three it kept were not the likeliest. Ties go to
    the one sharing the longest start (sched-050, not sched-095, for sched-05O), then to the nearest number
    (svc-250 before svc-259), then to the first by name. Case aside (API for api, est5edt for EST5EDT: a
    slip of case is a slip like any other); between names equally close so, the one whose case is nearer."""
    folded = name.casefold()
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(folded)
    number = _number_in(name)
    best: tuple[float, int, int, float, str] | None = None
    found: str | None = None
    for candidate in known:
        other_folded = candidate.casefold()
        matcher.set_seq1(other_folded)
        if matcher.real_quick_ratio() < cutoff or matcher.quick_ratio() < cutoff:
            continue
        score = matcher.ratio()
        if score < cutoff:
            continue
        other = _number_in(candidate)
        distance = abs(number - other) if number is not None and other is not None else 0
        as_written = difflib.SequenceMatcher(None, candidate, name).ratio()
        # Smallest first: the closest, the longest shared start, the nearest number, the nearest in case, the
        # first by name.
        rank = (-score, -_shared_start(folded, other_folded), distance, -as_written, candidate)
        if best is None or rank < best:
            best, found = rank, candidate
    return found


def _number_in(name: str) -> int | None:
    """The digits of a name read as one number (svc-025: 25), None when it has none."""
    digits = "".join(c for c in name if c.isascii() and c.isdigit())
    return int(digits[:18]) if digits else None  # a few: a long run would not convert


def _shared_start(first: str, second: str) -> int:
    """How many characters two names share from their start."""
    return next(
        (index for index, (a, b) in enumerate(zip(first, second, strict=False)) if a != b),
        min(len(first), len(second)),
    )
