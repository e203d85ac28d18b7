"""Rich output helpers shared by the CLI commands."""

from __future__ import annotations

import codecs
import json
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from copy import copy
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Annotated, Any, ClassVar, NoReturn, TextIO, cast
from urllib.parse import unquote, urlsplit

import typer
from pydantic import BaseModel
from rich._ratio import ratio_reduce
from rich.cells import cell_len
from rich.console import (
    Console,
    ConsoleDimensions,
    ConsoleOptions,
    HighlighterType,
    JustifyMethod,
    OverflowMethod,
    RenderableType,
    RenderResult,
)
from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Span, Text

from warroom.cli.helptext import DURATION_FORMS
from warroom.client import ApiError, changes_nothing
from warroom.fields import MAX_ROW_ID


def _visible_table() -> dict[int, str]:
    """Control characters as visible stand-ins: ESC as ␛ (Unicode's control pictures), C1 codes and direction
    marks as <U+202E>. Line feeds and tabs stay; the Unicode line and paragraph separators are line feeds
    (where a line break is kept, it is one the terminal and Rich both see)."""
    table = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
    table[0x7F] = "\u2421"
    for code in [*range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[code] = f"<U+{code:04X}>"
    table[0x2028] = table[0x2029] = "\n"
    return table


VISIBLE = _visible_table()

# How a line break shows where the text must stay on one line (a list's cell, a heading): as the control
# picture ␤ ("newline"), as an escape shows as ␛. Otherwise a summary "disk full\n│ ALR-9 │ resolved │" drew
# lines that read as another alert's row. A carriage return is ␍, as before; the other separators Unicode
# knows (vertical tab, form feed, the information separators, NEL) have their stand-ins in ``VISIBLE``.
NEWLINE = "\u2424"
ONE_LINE = {**VISIBLE, 0x0A: NEWLINE, 0x2028: NEWLINE, 0x2029: NEWLINE}
_LAID_OUT = {**VISIBLE, 0x2028: NEWLINE, 0x2029: NEWLINE}


def visible(text: str) -> str:
    """``text`` with its control characters shown, not obeyed by the terminal; its line breaks stay."""
    return text.translate(VISIBLE)


def one_line(text: str) -> str:
    """``text`` as ``visible`` shows it, on one line (a heading, a list's cell): each line break as ␤."""
    return text.translate(ONE_LINE)


def visible_text(text: Text, stand_ins: dict[int, str] = VISIBLE) -> Text:
    """``text`` with its control characters shown (see ``visible``; ``ONE_LINE``: ``one_line``), its styles
    on the same characters."""
    plain = text.plain
    shown = plain.translate(stand_ins)
    if shown == plain:
        return text
    # Where each character of ``plain`` starts in ``shown`` (a stand-in is longer than what it stands for).
    starts = [0]
    for character in plain:
        starts.append(starts[-1] + len(stand_ins.get(ord(character), character)))
    copy = text.blank_copy(shown)
    copy.spans = [
        Span(starts[min(span.start, len(plain))], starts[min(span.end, len(plain))], span.style)
        for span in text.spans
    ]
    return copy


class SafeConsole(Console):
    """A console that never passes control characters from the data it prints to the terminal: an alert
    summary, a customer report (public, unauthenticated) or a label may hold escape sequences that clear the
    screen, retitle the window or reorder text. Rich's own styling (segments with a style, or control
    segments) is rendered as usual; only the text is made visible.

    Text is made visible before Rich measures it (strings as they become Text, Text as it is rendered;
    ``cell`` does it for a table's cells), so a table's columns are as wide as the stand-ins it shows: Rich
    counts a control character as no width, and ``<U+202E>`` put in its place afterwards widened its row."""

    def render_str(
        self,
        text: str,
        *,
        style: str | Style = "",
        justify: JustifyMethod | None = None,
        overflow: OverflowMethod | None = None,
        emoji: bool | None = None,
        markup: bool | None = None,
        highlight: bool | None = None,
        highlighter: HighlighterType | None = None,
    ) -> Text:
        return visible_text(
            super().render_str(
                text,
                style=style,
                justify=justify,
                overflow=overflow,
                emoji=emoji,
                markup=markup,
                highlight=highlight,
                highlighter=highlighter,
            )
        )

    def render(self, renderable: RenderableType, options: ConsoleOptions | None = None) -> Iterable[Segment]:
        return super().render(
            visible_text(renderable) if isinstance(renderable, Text) else renderable, options
        )

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # The last line of defence: whatever reached the output without passing the above.
        # A line separator that got this far is shown, not made a line break: the lines are laid out.
        return super()._render_buffer(
            segment if segment.control else Segment(segment.text.translate(_LAID_OUT), segment.style, None)
            for segment in buffer
        )

    @property
    def size(self) -> ConsoleDimensions:
        """Output to a pipe or a file (cron, ``| grep``) has no width of its own: Rich laid it out for 80
        columns, leaving columns out ("not shown at this width") and wrapping titles, so that ``grep`` missed
        rows. There, unless COLUMNS says otherwise, a table is as wide as its rows. A terminal keeps its
        width, narrow or not: COLUMNS may narrow it, never widen it past the right edge.

        Whether the output is a terminal is the stream's own word (``isatty``), not ``is_terminal``: Rich
        says a pipe is a terminal under FORCE_COLOR (which is about colour, not width), and gives a dumb
        terminal (TERM=dumb) 80 columns whatever its size."""
        size = super().size
        columns = self._environ.get("COLUMNS", "")
        if self._width is not None and str(self._width) != columns:
            return size  # a width the code set (``SafeConsole(width=…)``), not read from COLUMNS
        terminal = _terminal_size(self.file)
        if terminal is None:
            return size if columns.isdigit() else ConsoleDimensions(PIPED_WIDTH, size.height)
        width = terminal.columns or size.width  # a pseudo-terminal may say 0 x 0
        if columns.isdigit() and int(columns) > 0:
            width = min(width, int(columns))
        height = (terminal.lines or size.height) if self.is_dumb_terminal else size.height
        return ConsoleDimensions(width, height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


# The width of output to a pipe or a file (see ``SafeConsole.size``): wider than any row.
PIPED_WIDTH = 100_000

# What a character the output's encoding cannot hold becomes (a Latin-1 or ASCII locale, or
# PYTHONIOENCODING=cp1252 into a file): the CLI's own characters (the "—" of an empty cell, the "…" of a cut
# text, the "␤" of a line break, the "→" of a change) an ASCII stand-in that reads the same; anything else (a
# name in Greek) "?".
# Rich already draws its boxes in ASCII there; these characters made the write raise UnicodeEncodeError, a
# traceback and exit 1, after an incident had been created.
_STAND_INS = {
    "\u2014": "-",
    "\u2013": "-",
    "\u2212": "-",
    "\u2026": "...",
    "\u2192": "->",
    "\u2190": "<-",
    "\u2022": "*",
    "\u201c": '"',
    "\u201d": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u00a0": " ",
    "\u2588": "#",
    "\u2502": "|",
    "\u2503": "|",
    "\u2500": "-",
    "\u2501": "-",
    NEWLINE: "\\n",
    "\u240d": "\\r",
    "\u2409": "\\t",
    "\u241b": "\\e",
    "\u2421": "\\x7f",
}


def stand_in(character: str) -> str:
    """What ``character`` is written as where the output's encoding has no room for it: an ASCII stand-in
    for the CLI's own characters, a control character's picture (``visible``) as its escape, else "?"."""
    if character in _STAND_INS:
        return _STAND_INS[character]
    if "\u2400" <= character < "\u2420":
        return f"\\x{ord(character) - 0x2400:02x}"
    return "?"


def _stand_in_errors(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    return "".join(stand_in(character) for character in exc.object[exc.start : exc.end]), exc.end


# The error handler (``codecs.register_error``) of the CLI's standard output and error: see ``_STAND_INS``.
STAND_INS = "warroom-stand-ins"
codecs.register_error(STAND_INS, _stand_in_errors)


class WatchedOutput:
    """Standard output as the CLI writes to it: each write that fails (the disk full, a broken pipe) is kept
    in ``failures``, so that the command says the output was lost instead of a traceback (``OutputGuard``).
    Its binary ``buffer`` is watched too (click writes there where the encoding is ASCII); all else is the
    stream's own."""

    def __init__(self, stream: Any, failures: list[OSError]) -> None:
        self._stream = stream
        self._failures = failures

    def write(self, data: Any) -> int:
        try:
            written: int = self._stream.write(data)
        except OSError as exc:
            self._failures.append(exc)
            raise
        return written

    def writelines(self, lines: Iterable[Any]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._failures.append(exc)
            raise

    @property
    def buffer(self) -> WatchedOutput:
        return WatchedOutput(self._stream.buffer, self._failures)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class OutputGuard:
    """The CLI's standard streams for one run (``install`` … ``restore``): writing to them never raises for
    an encoding (``STAND_INS``), and standard output's failed writes are kept (``WatchedOutput``)."""

    def __init__(self) -> None:
        self.failures: list[OSError] = []
        self._stdout: TextIO | None = None
        self._errors: list[tuple[Any, str]] = []

    def install(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            errors = getattr(stream, "errors", None)
            if hasattr(stream, "reconfigure") and isinstance(errors, str) and errors != STAND_INS:
                try:
                    stream.reconfigure(errors=STAND_INS)
                except (OSError, ValueError):  # a stream that cannot be reconfigured keeps its errors
                    continue
                self._errors.append((stream, errors))
        self._stdout = sys.stdout
        if sys.stdout is not None:
            sys.stdout = cast(TextIO, WatchedOutput(sys.stdout, self.failures))

    @property
    def failure(self) -> OSError | None:
        """The first write to standard output that failed, if one did."""
        return self.failures[0] if self.failures else None

    def flush(self) -> None:
        """Write out what standard output still holds, now that a failure can still be said (at the
        interpreter's exit, the disk full was a traceback or a line on stderr that changed no exit status)."""
        if sys.stdout is not None:
            sys.stdout.flush()

    def discard(self) -> None:
        """Send what standard output still holds nowhere (its file descriptor to /dev/null): it cannot be
        written, which has been said, and the interpreter's own flush at exit would fail on it again."""
        try:
            descriptor = self._stdout.fileno() if self._stdout is not None else -1
        except (AttributeError, OSError, ValueError):  # not a file (a test's runner)
            return
        if descriptor < 0:
            return
        nowhere = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(nowhere, descriptor)
        finally:
            os.close(nowhere)

    def restore(self) -> None:
        if self._stdout is not None:
            sys.stdout = self._stdout
        for stream, errors in self._errors:
            with suppress(OSError, ValueError):
                stream.reconfigure(errors=errors)
        self._errors.clear()


console = SafeConsole()
# Errors and warnings are one line however long (soft wrap): a terminal folds them, and a log (journald, a
# pipe) keeps each as one entry.
error_console = SafeConsole(stderr=True, soft_wrap=True)

# A numeric id argument (a token, an integration, a responder): out of range is a usage error, not a trace.
RowIdArgument = Annotated[int, typer.Argument(min=1, max=MAX_ROW_ID, help="The id (a number).")]

SEVERITY_STYLE = {"P0": "bold white on red", "P1": "bold red", "P2": "yellow", "P3": "dim"}
STATUS_STYLE = {
    "investigating": "red",
    "identified": "yellow",
    "monitoring": "cyan",
    "resolved": "green",
    "postmortem": "magenta",
    "closed": "dim",
}


def fail(message: str, code: int = 1) -> NoReturn:
    """End the command, saying why: exit 1, the command ran and failed (the server refused, the database
    said no); ``usage_error`` for a command line that cannot be right."""
    error_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


# Click's exit status for a usage error (an unknown option, a value it cannot read).
USAGE = 2


def usage_error(message: str) -> NoReturn:
    """``fail`` for what the CLI finds wrong with its own arguments before any request (options that exclude
    each other, a value out of range, a file named that cannot be read): exit 2, as click's usage errors, so
    that a script tells a wrong command line (2) from a refusal or a failure (1)."""
    fail(message, USAGE)


def _setting_hint(exc: ApiError) -> str | None:
    """Which of the client's settings an answer points at, when it points at one; or, for a write that got
    no answer, how to see whether it was made."""
    if exc.status == 401 and not os.environ.get("WARROOM_TOKEN", "").strip():
        return "set WARROOM_TOKEN to an API token (warroom token create --name NAME --role responder)"
    if exc.status == 401 and exc.message in ("the token is not valid", "the token was revoked"):
        # The token in WARROOM_TOKEN was refused (unknown, revoked): where a working one comes from. (An
        # integration key sent as one is refused saying so already; "a token is required" with WARROOM_TOKEN
        # set means something between dropped it.)
        return (
            "set WARROOM_TOKEN to a valid API token (an admin makes one with warroom token create --name "
            "NAME --role responder; warroom token list shows which are revoked)"
        )
    # Only the router's "Not Found" (no route has the path) points at a path in WARROOM_URL: Warroom's own
    # not_found answers ("no incident INC-999") come through a path-prefix proxy (http://proxy/warroom) too.
    if exc.status == 404 and exc.code == "not_found" and exc.message == "Not Found":
        address = urlsplit(os.environ.get("WARROOM_URL", "").strip())
        if address.path.strip("/"):
            return f"WARROOM_URL is the server's address, without a path: {address.scheme}://{address.netloc}"
    if exc.code == "unreachable" and not os.environ.get("WARROOM_URL", "").strip():
        return "WARROOM_URL is not set (so the default address was tried): set it to the server's address"
    if exc.code == "no_answer" and isinstance(exc.details, dict):
        path = str(exc.details.get("path", ""))
        if changes_nothing(str(exc.details.get("method", "")), path):
            return "WARROOM_TIMEOUT (seconds) waits longer"
        return f"check with `{check_command(path)}` before retrying"
    return None


def check_command(path: str) -> str:
    """The command that shows whether a write to the API ``path`` was made (its outcome unknown: no answer
    came in time)."""
    parts = [unquote(part) for part in path.strip("/").split("/")][2:]  # after api/v1
    kind, ref, sub = [*parts, "", "", ""][:3]
    if kind == "incidents" and ref:
        if sub == "pages":
            return f"warroom oncall pages {ref}"
        return (
            f"warroom incident timeline {ref}"
            if sub in ("timeline", "updates")
            else f"warroom incident show {ref}"
        )
    if kind in ("alerts", "maintenance") and ref:
        return f"warroom {kind} show {ref}"
    if kind == "oncall" and ref and sub == "overrides":
        return f"warroom oncall overrides {ref}"
    return {
        "incidents": "warroom incident list",
        "alerts": "warroom alerts list",
        "reports": "warroom alerts list",
        "maintenance": "warroom maintenance list --all",
        "notifications": "warroom notify list",
        "changes": "warroom changes list",
        "config": "warroom config status",
    }.get(kind, "the matching list or show command")


def refusal_text(exc: ApiError, options: Mapping[str, str] | None = None) -> str:
    """The server's message for ``exc``; where it refused fields that ``options`` maps to the command's
    options (``{"body": "--message"}``), said of those options: "--message: String should have at most 4000
    characters", not "body: …", a name the person never typed."""
    details = exc.details if isinstance(exc.details, list) else []
    if not options or not exc.from_server or exc.status != 422 or not details:
        return exc.message
    named = [
        (options.get(str(entry.get("field"))), entry.get("message"))
        for entry in details
        if isinstance(entry, dict)
    ]
    if not named or not all(option and isinstance(text, str) for option, text in named):
        return exc.message
    return "; ".join(f"{option}: {text}" for option, text in named)


def error_text(exc: ApiError, options: Mapping[str, str] | None = None) -> str:
    """How the CLI says ``exc``: the server's message with its status and code (its fields named as the
    ``options`` that set them: ``refusal_text``), or the client's own, and what setting to look at (or what
    to check before retrying), if there is one."""
    said = refusal_text(exc, options)
    message = f"{said} ({exc.status} {exc.code})" if exc.status and exc.from_server else said
    hint = _setting_hint(exc)
    return f"{message}; {hint}" if hint else message


@contextmanager
def api_errors(options: Mapping[str, str] | None = None) -> Iterator[None]:
    """An ``ApiError`` ends the command (exit 1), said by ``error_text``; ``options``: the request's fields
    the command's options set, by name (``{"body": "--message"}``)."""
    try:
        yield
    except ApiError as exc:
        fail(error_text(exc, options))


# Where a list cuts a text that may run to pages (an error with a traceback or a response body): the table
# wraps it, so this is about a row's height, not its width.
LONG_TEXT = 300


def clipped(text: str | None, limit: int = LONG_TEXT) -> str:
    """``text`` up to ``limit`` characters, with "…" where it was cut, so a cut text never reads as whole."""
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Names that mean an offset of zero. Any other name at zero is a TZ the C library did not know (TZ=Foo/Bar
# reads as UTC named "Foo"), and "UTC" away from zero is a POSIX TZ such as UTC+3 (three hours behind UTC).
_ZERO_NAMES = frozenset({"UTC", "GMT", "WET", "Z"})


def zone(value: datetime) -> str:
    """The name of this machine's zone at ``value`` (``IST``, ``CEST``, ``UTC``), or its offset (``+05:30``)
    where the zone has no name (``-03``) or a name that would mislead (a TZ the machine does not know, or a
    POSIX one like ``UTC+3``)."""
    local = value.astimezone()
    name = local.tzname() or ""
    offset = local.strftime("%z")  # +0530
    at_zero = offset in ("+0000", "-0000")
    if name.isalpha() and at_zero == (name in _ZERO_NAMES):
        return name
    return f"{offset[:3]}:{offset[3:5]}" if offset else name


def abridged(text: str, limit: int, whole: str) -> str:
    """``text`` up to ``limit`` characters; a longer one cut there, with a note of how much was left out and
    where ``whole`` (a command) gives all of it. For the detail view (``alerts show``): a PagerDuty
    ``custom_details`` of 400 KB printed 422,609 characters, a responder's scrollback gone."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit:,} more characters not shown: {whole} has all]"


def when(value: datetime | None) -> str:
    """A moment in full, in this machine's zone, which it names (``2026-12-07 02:51:12 IST``): the server's
    own texts (a timeline entry, a refusal) give theirs in UTC, and a time without its zone could not be put
    beside them."""
    return f"{value.astimezone().strftime('%Y-%m-%d %H:%M:%S')} {zone(value)}" if value else "—"


def zone_note(zones: Iterable[str]) -> str:
    """What a table of short times (``short_when``) says once under it: which zone they are in."""
    named = list(dict.fromkeys(zones))
    return f"times in {', '.join(named)}" if named else ""


def short_when(
    value: datetime | None, now: datetime | None = None, *, dated: bool = False, seconds: bool = False
) -> str:
    """A time in a table that has no room for ``when``'s: ``14:12`` today, ``Dec 05 14:12`` on another day of
    this year, ``2025-12-05 14:12`` in another year (this machine's zone, as ``when``; the table names it
    once, in its caption: ``zone_note``). ``dated``: the day
    even today, for a table about another moment than now (``14:12`` would read as that moment's day).
    ``seconds``: ``14:12:07``, for a table whose rows may be seconds apart (a flapping alert's timeline)."""
    if value is None:
        return "—"
    local = value.astimezone()
    today = (now or datetime.now()).astimezone()
    clock = "%H:%M:%S" if seconds else "%H:%M"
    if local.date() == today.date() and not dated:
        return local.strftime(clock)
    return local.strftime(f"%b %d {clock}" if local.year == today.year else f"%Y-%m-%d {clock}")


# How a cell writes a time: ``when`` where its table has room, ``short_when`` where it has not.
At = Callable[[datetime | None], str]


@dataclass(frozen=True)
class Timed:
    """A table cell with times in a sentence (``since 14:12``): ``write`` is given ``when`` or ``short_when``,
    as a bare datetime in a cell is written with one or the other."""

    write: Callable[[At], Any]


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value) or "")


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    typer.echo(json.dumps(value, indent=2))


def cell(value: Any, at: At = when, *, lines: bool = False) -> Text:
    """A table cell: styled text as it is; a time (a datetime, or ``Timed``) written by ``at``; anything else
    as plain text. Values come from alerts, people and files, so a "[/]" in a summary must print as itself,
    not as markup (which raised an error). Control characters are shown as their stand-ins already here, so
    that Rich measures the column with them; so are line breaks (``one_line``: one alert is one row), unless
    ``lines`` (a description or a note in ``show``, whose lines stay inside its cell)."""
    stand_ins = VISIBLE if lines else ONE_LINE
    if isinstance(value, Timed):
        value = value.write(at)
    elif isinstance(value, datetime):
        value = at(value)
    if isinstance(value, Text):
        return visible_text(value, stand_ins)
    return Text(("—" if value is None else str(value)).translate(stand_ins))


# A free-text column (a summary, a title) is given at least this many characters (besides its padding)
# before a table leaves out a column; it wraps within them.
TEXT_FLOOR = 20
# Free text is widened to this much before the short-word columns get the room they would like.
TEXT_COMFORT = 32
# The least a free-text column is narrowed to before the word columns that have no ``drop`` are left out
# too (in a terminal of 50 columns, an alert list's id, status, severity, incident and time left its summary
# no width at all, and the table ran past the right edge).
TEXT_LEAST = 15


@dataclass(frozen=True)
class TextColumn:
    """A column of free text (a summary, a title, an error): where the terminal is narrow it wraps, and it
    gives up its width before the short-word columns do (down to ``TEXT_FLOOR``); a word longer than the
    column (a host name, a URL, a run of CJK text) is folded onto the next line, never cut. ``drop``: see
    ``WordColumn``. ``lines``: its line breaks are kept (a description in ``show``); elsewhere a cell is one
    line, its line breaks shown as ␤. A plain string as a column is a ``TextColumn`` that is never left
    out."""

    header: str
    drop: int | None = None
    lines: bool = False

    def add_to(self, table: Table) -> None:
        table.add_column(self.header, overflow="fold")


# What a word column keeps on one line: a word, or a short date's month and day (``Dec 05``, over ``14:12``
# below it, reads better than ``Dec`` over ``05``).
UNIT = re.compile(r"[A-Z][a-z]{2} \d\d(?!\S)|\S+")

# The widest a word column asks for, whatever its words: a longer word (an integration named in a sentence, a
# URL as a service) folds onto the next line where the terminal is narrow, rather than pushing the other
# columns out of the table (a 300-character name left its id column no width at all). Every short word (a
# status, a severity, a source, a date) is narrower, so it is never cut nor folded.
WORD_WIDTH = 24


@dataclass(frozen=True)
class WordColumn:
    """A column of short words (a severity, a status, a source, a service, a time): a word is never cut, so
    ``crit…`` never stands for critical; a cell of several words wraps between them. A column whose cells
    are times (datetimes, ``Timed``) is one of these without saying so. A word longer than ``WORD_WIDTH``
    (a long name) may be folded, never cut, where the terminal is narrow.

    ``drop``: where the table cannot fit the terminal even with its free text down to ``TEXT_FLOOR``, the
    columns with a ``drop`` are left out, the lowest first, until it fits (the caption names them); a
    column without one stays unless the free text would have less than ``TEXT_LEAST`` (see ``_Table``).
    ``keep``: it stays even then (the names of a detail view: a value without its name means nothing).
    ``text_gives``: before this column is left out so, the free text gives that many characters more than
    ``TEXT_LEAST`` (an alert list's status, which says whether anyone owns the alert)."""

    header: str
    drop: int | None = None
    keep: bool = False
    text_gives: int = 0

    # The widest its ``min_width`` gets (None: as wide as its widest word, however wide: an id).
    longest: ClassVar[int | None] = WORD_WIDTH

    def add_to(self, table: Table, cells: Sequence[Text]) -> None:
        """Add this column to ``table``, as wide as its widest word (the header's too) at the least, up to
        ``longest``."""
        words = [word for text in (Text(self.header), *cells) for word in UNIT.findall(text.plain)]
        widest = max((cell_len(word) for word in words), default=1)
        least = widest if self.longest is None else min(widest, self.longest)
        # A cell may stay on one line only where the column is never narrower than it (Rich cuts such a line).
        single_words = least == widest and all(len(text.plain.split()) <= 1 for text in cells)
        # The header wraps between its words even where the cells do not (``last`` over ``seen``, over 14:12).
        header = Text.from_markup(self.header)
        header.no_wrap = False
        table.add_column(header, no_wrap=single_words, min_width=least, overflow="fold")


@dataclass(frozen=True)
class IdColumn(WordColumn):
    """A table column of ids and refs (``ALR-1234``, ``INC-7``, ``MW-3``, a number): one is never wrapped or
    cut, however narrow the terminal, since it is what a person types next (``alerts ack ALR-1234``). The
    other columns wrap to make room. A cell of several words (``inhibited by ALR-12``) may wrap between
    them, never inside one. It is never left out."""

    longest: ClassVar[int | None] = None


Columns = Sequence[str | TextColumn | WordColumn]


def _fill(widths: list[int], targets: list[int], indexes: Iterable[int], room: int) -> int:
    """Widen the columns at ``indexes`` toward their ``targets`` out of ``room``: evenly, the ones that
    need least given all they need first. Returns the room left."""
    pending = sorted((i for i in indexes if targets[i] > widths[i]), key=lambda i: targets[i] - widths[i])
    while pending and room > 0:
        share, left = divmod(room, len(pending))
        first = pending[0]
        if targets[first] - widths[first] <= share:
            room -= targets[first] - widths[first]
            widths[first] = targets[first]
            pending.pop(0)
            continue
        # None gets all it needs: each gets a share (the first ones one more, for what does not divide).
        for n, index in enumerate(pending):
            widths[index] += share + (1 if n < left else 0)
        return 0
    return room


class _Table(Table):
    """A table that stays readable in a narrow terminal (80 columns). Rich narrows every column alike there
    (a summary, a severity and a time all came out five characters wide: ``crit…``, ``2026…``); here:

    - a table with times in it writes them shortly (``short_when``) when it does not fit with ``when``'s
      (``narrow``, the same table with short times, is drawn instead);
    - words of a ``WordColumn`` (ids, severities, statuses, times) are never cut, the free text takes the
      cut, down to ``TEXT_FLOOR``;
    - below that, columns with a ``drop`` are left out, the lowest first, and the caption says which;
    - where even that does not fit, the free text is narrowed down to ``TEXT_LEAST``, and below that the
      other word columns (never an id) are left out too, the rightmost first, and named with the others.

    Only where the ids alone leave the free text less than ``TEXT_LEAST`` does it get what is left; where
    even that does not fit, Rich narrows the free-text columns alike and the id and word columns keep their
    ``min_width``: the width comes from the free text (Rich took it from every column, then gave an id
    column back its ``min_width``, which left the table wider than the terminal)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.narrow: _Table | None = None
        # Each column's spec, in step with ``columns``: its ``drop`` and its header as plain text.
        self.specs: list[TextColumn | WordColumn] = []

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.narrow is not None and not self._fits(console, options):
            yield from self.narrow.__rich_console__(console, options)
            return
        yield from Table.__rich_console__(self._fitted(console, options), console, options)

    def _natural(self, console: Console, options: ConsoleOptions) -> list[int]:
        """Each column's width with its widest cell on one line, padding included."""
        return [self._measure_column(console, options, column).maximum or 1 for column in self.columns]

    def _fits(self, console: Console, options: ConsoleOptions) -> bool:
        return sum(self._natural(console, options)) + self._extra_width <= options.max_width

    def _floors(self, natural: Sequence[int], text_floor: int = TEXT_FLOOR) -> list[int]:
        """The least width of each column, padding included: its widest word for an id or word column (its
        ``min_width``), ``text_floor`` for free text (or less, if all of it is shorter)."""
        return [
            column.min_width + padding if column.min_width is not None else min(width, text_floor + padding)
            for column, width, padding in (
                (column, width, self._get_padding_width(column._index))
                for column, width in zip(self.columns, natural, strict=True)
            )
        ]

    def _fitted(self, console: Console, options: ConsoleOptions) -> Table:
        """This table, or a copy without the columns it leaves out to fit ``options.max_width``."""
        if not self.specs or self._fits(console, options):
            return self
        natural = self._natural(console, options)
        edges = 2 if self.box and self.show_edge else 0

        def fits(kept: list[int], text_floor: int) -> bool:
            floors = self._floors(natural, text_floor)
            lines = len(kept) - 1 if self.box else 0
            return sum(floors[i] for i in kept) + lines + edges <= options.max_width

        kept = list(range(len(self.columns)))
        droppable = sorted((spec.drop, i) for i, spec in enumerate(self.specs) if spec.drop is not None)
        for _, index in droppable:
            if fits(kept, TEXT_FLOOR):
                break
            kept.remove(index)
        # The last resort: the free text keeps TEXT_LEAST, the word columns without a ``drop`` go (the
        # rightmost first; the ids stay: they are what a person types next), so that the table keeps its
        # right edge and its text stays readable.
        last_resort = [
            index
            for index in reversed(kept)
            if isinstance(spec := self.specs[index], WordColumn)
            and not (spec.keep or isinstance(spec, IdColumn))
        ]
        for index in last_resort:
            spec = self.specs[index]
            if fits(kept, TEXT_LEAST - (spec.text_gives if isinstance(spec, WordColumn) else 0)):
                break
            kept.remove(index)
        if len(kept) == len(self.columns):
            return self
        fitted = copy(self)
        fitted.columns = [replace(self.columns[index], _index=n) for n, index in enumerate(kept)]
        fitted.specs = [self.specs[index] for index in kept]
        left_out = [spec.header or "bars" for index, spec in enumerate(self.specs) if index not in kept]
        note = escape(f"not shown at this width: {', '.join(left_out)} (--json has all)")
        fitted.caption = f"{self.caption}\n{note}" if self.caption else note
        return fitted

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        max_width = options.max_width
        natural = self._natural(console, options)
        if sum(natural) <= max_width:
            return super()._calculate_column_widths(console, options)
        # The free text gives up its width first: down to TEXT_FLOOR, then (nothing left to leave out) below.
        for text_floor in range(TEXT_FLOOR, 0, -1):
            widths = self._floors(natural, text_floor)
            if sum(widths) <= max_width:
                text = [i for i, column in enumerate(self.columns) if column.min_width is None]
                words = [i for i, column in enumerate(self.columns) if column.min_width is not None]
                comfort = [
                    min(width, TEXT_COMFORT + self._get_padding_width(i)) for i, width in enumerate(natural)
                ]
                room = _fill(widths, comfort, text, max_width - sum(widths))
                room = _fill(widths, natural, words, room)
                _fill(widths, natural, text, room)
                return widths
        # Not even the id and word columns fit: Rich narrows the columns, then the ids get their width back
        # from the others.
        widths = super()._calculate_column_widths(console, options)
        excess = sum(widths) - max_width
        if excess <= 0:
            return widths
        # What each other column can give, keeping one character besides its padding.
        give = [
            0 if column.min_width is not None else max(0, width - self._get_padding_width(index) - 1)
            for index, (column, width) in enumerate(zip(self.columns, widths, strict=True))
        ]
        return ratio_reduce(excess, give, give, widths)


def _spec(column: str | TextColumn | WordColumn, raw: Sequence[Any]) -> TextColumn | WordColumn:
    """A column's spec; a plain string's is a ``WordColumn`` if its cells are times, else a ``TextColumn``."""
    if not isinstance(column, str):
        return column
    timed = any(isinstance(value, datetime | Timed) for value in raw)
    return WordColumn(column) if timed else TextColumn(column)


def _build(
    title: str | None,
    specs: Sequence[TextColumn | WordColumn],
    rows: Sequence[Sequence[Any]],
    at: At,
    row_styles: Sequence[str | None] | None,
    caption: str | None,
    *,
    zoned: bool = False,
) -> _Table:
    """The table; ``zoned``: its times do not name their zone (``short_when``), so the caption does."""
    zones: list[str] = []

    def noting(value: datetime | None) -> str:
        if value is not None:
            zones.append(zone(value))
        return at(value)

    cells = [
        [
            cell(value, noting, lines=isinstance(spec, TextColumn) and spec.lines)
            for value, spec in zip(row, specs, strict=False)
        ]
        for row in rows
    ]
    notes = [caption or "", zone_note(zones) if zoned else ""]
    caption = "\n".join(note for note in notes if note)
    output = _Table(
        title=escape(one_line(title)) if title else None,
        title_justify="left",
        header_style="bold",
        caption=escape(caption) if caption else None,
        caption_justify="left",
    )
    for index, spec in enumerate(specs):
        if isinstance(spec, WordColumn):
            spec.add_to(output, [row[index] for row in cells if index < len(row)])
        else:
            spec.add_to(output)
    output.specs = list(specs)
    for index, row in enumerate(cells):
        output.add_row(*row, style=row_styles[index] if row_styles else None)
    return output


def build_table(
    title: str | None,
    columns: Columns,
    rows: Sequence[Sequence[Any]],
    *,
    row_styles: Sequence[str | None] | None = None,
    caption: str | None = None,
    dated: bool = False,
    short: bool = True,
    seconds: bool = False,
) -> Table:
    """A table of ``rows``; a cell may be a datetime or ``Timed``, written with ``when`` where the table fits
    the terminal with them and ``short_when`` where it does not (``short``: False keeps ``when``, for the
    detail of one thing, as ``alerts show``). ``dated``: the table is about another moment than now
    (``oncall who --at``), so its short times keep their day (see ``short_when``). ``seconds``: its short
    times keep their seconds (rows seconds apart stay apart; columns with a ``drop`` go first)."""
    specs = [
        _spec(column, [row[index] for row in rows if index < len(row)])
        for index, column in enumerate(columns)
    ]
    output = _build(title, specs, rows, when, row_styles, caption)
    if short and any(isinstance(value, datetime | Timed) for row in rows for value in row):

        def shortly(value: datetime | None) -> str:
            return short_when(value, dated=dated, seconds=seconds)

        output.narrow = _build(title, specs, rows, shortly, row_styles, caption, zoned=True)
    return output


def fields_table(title: str | None, headers: tuple[str, str], rows: Sequence[Sequence[Any]]) -> Table:
    """The detail of one thing (``alerts show``): a name and its value a row. A name is never cut (a word
    longer than ``WORD_WIDTH`` folds); a value wraps, a long token in it (a URL) folding, and keeps its line
    breaks inside its cell; a time is written in full, with its zone."""
    name, value = headers
    return build_table(title, [WordColumn(name, keep=True), TextColumn(value, lines=True)], rows, short=False)


def bar(value: float, most: float, style: str, width: int = 12) -> Text:
    """A bar for a table cell: ``value`` against the largest ``most`` (at least one block when not zero)."""
    blocks = max(1, round(width * value / most)) if value > 0 and most > 0 else 0
    return Text("█" * blocks, style=style)


def table(
    title: str | None,
    columns: Columns,
    rows: Sequence[Sequence[Any]],
    *,
    dated: bool = False,
    seconds: bool = False,
    caption: str | None = None,
) -> None:
    console.print(build_table(title, columns, rows, dated=dated, seconds=seconds, caption=caption))


def go_on(question: str, *, as_json: bool, skip: str = "--yes", shown: RenderableType | None = None) -> None:
    """Show ``shown`` (what the change is to) and ask ``question`` (yes or no) before a change to several
    things, or stop (exit 2, nothing changed) where there is no one to ask: with ``--json`` (the output is a
    script's), or a standard input that gives no answer (cron, ``</dev/null``, closed: ``<&-``), which said
    only "Aborted." after the question. An answer piped in (``echo y |``) is taken as typed. ``skip``: the
    option that does without the question."""
    if as_json:
        usage_error(f"with --json, filters need {skip}: there is no one to ask")
    if _is_tty(sys.stdin):
        # A person answers at the terminal, so they see what they confirm and the question there: with the
        # output to a file (``> acked.txt``), on standard error, not in the file while the terminal waits.
        asking = console if _is_tty(console.file) else error_console if _is_tty(error_console.file) else None
        if asking is None:
            usage_error(
                "neither standard output nor standard error is a terminal, so the question would not be "
                f"seen: filters need {skip}: there is no one to ask"
            )
        if shown is not None:
            asking.print(shown, soft_wrap=False)
        if asking is console:
            typer.confirm(question, abort=True)
            return
        # Not typer.confirm(err=True): it still writes a space to standard output (into the file).
        asking.print(f"{question} [y/N]: ", end="", markup=False, highlight=False)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            raise typer.Abort()
        return
    if shown is not None:
        console.print(shown)
    # A closed standard input (``<&-``) is no stream at all (None): no answer either.
    answer = sys.stdin.readline() if sys.stdin is not None else ""
    # The question and its answer (or none) stay in the log, as a terminal would show them.
    console.print(escape(f"{question} [y/N]: {answer.strip()}"))
    if not answer:
        usage_error(
            f"standard input is not a terminal and gave no answer: filters need {skip}: "
            "there is no one to ask"
        )
    if answer.strip().lower() not in ("y", "yes"):
        raise typer.Abort()


def _is_tty(stream: object) -> bool:
    """Whether ``stream`` is a terminal (False for None, a closed stream or a test's)."""
    try:
        return bool(stream is not None and stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def _terminal_size(stream: object) -> os.terminal_size | None:
    """The size of the terminal ``stream`` writes to; None for a pipe, a file or a stream without a file
    descriptor (a test's)."""
    try:
        descriptor = stream.fileno()  # type: ignore[attr-defined]
        return os.get_terminal_size(descriptor) if os.isatty(descriptor) else None
    except (AttributeError, OSError, ValueError):
        return None


def emit(as_json: bool, value: Any, render: Callable[[], None]) -> None:
    if as_json:
        print_json(value)
    else:
        render()


def name_values(values: list[str], option: str, what: str = "name=value") -> dict[str, str]:
    """Repeated ``--label name=value`` options as a dict (a usage error for one without ``=``)."""
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"{value!r}: write it as {what}", param_hint=option)
        pairs[name.strip()] = text
    return pairs


# How long something lasts from now (a maintenance window, a snooze): ``--for`` or ``--until``, exactly one.
ForOption = Annotated[str | None, typer.Option("--for", help=f"How long: {DURATION_FORMS}.")]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="The end, ISO 8601 (local time without an offset).")
]


def one_end(duration: str | None, until: str | None) -> str | None:
    """Exactly one of ``--for`` and ``--until``; the ``--until`` instant with its offset (None with --for)."""
    if (duration is None) == (until is None):
        usage_error("give either --for (a duration) or --until (an end time)")
    return instant(until, "--until")


def instant(value: str | None, option: str) -> str | None:
    """Accept ISO 8601 with an offset; a time without one is taken as this machine's local time. One the
    clock skips there (the night it goes forward) is refused; one it shows twice (going back) is the first,
    as the server reads a maintenance schedule's."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-03-29T09:00", param_hint=option
        ) from None
    if parsed.tzinfo is None:
        try:
            readings = [parsed.replace(fold=fold).astimezone() for fold in (0, 1)]
        except (OverflowError, ValueError):
            raise typer.BadParameter(
                f"{value!r} is too far off to be a time here; give a year from 1970 to 2200",
                param_hint=option,
            ) from None
        # A time that exists reads back as itself; one in the gap comes back an hour off either way (and
        # astimezone would quietly take the one an hour earlier).
        exists = [reading for reading in readings if reading.replace(tzinfo=None) == parsed]
        if not exists:
            raise typer.BadParameter(
                f"{parsed:%Y-%m-%d %H:%M} does not exist in {_local_zone_name()} (clocks go forward): "
                "give an offset or another time",
                param_hint=option,
            )
        parsed = min(exists)
    return parsed.isoformat()


def _local_zone_name() -> str:
    """This machine's time zone, as its TZ or /etc/localtime names it, for messages."""
    named = os.environ.get("TZ", "").lstrip(":")
    if named:
        return named
    try:
        target = os.path.realpath("/etc/localtime")
    except OSError:
        target = ""
    if "zoneinfo/" in target:
        return target.split("zoneinfo/", 1)[1]
    return f"this machine's time zone ({time.tzname[0]})"
