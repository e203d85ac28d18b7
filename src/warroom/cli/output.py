"""Rich output helpers shared by the CLI commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import BaseModel
from rich._ratio import ratio_reduce
from rich.cells import cell_len
from rich.console import (
    Console,
    ConsoleOptions,
    HighlighterType,
    JustifyMethod,
    OverflowMethod,
    RenderableType,
)
from rich.markup import escape
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Span, Text

from warroom.client import ApiError
from warroom.db import MAX_ROW_ID


def _visible_table() -> dict[int, str]:
    """Control characters as visible stand-ins: ESC as ␛ (Unicode's control pictures), C1 codes and direction
    marks as <U+202E>. Line feeds and tabs stay."""
    table = {code: chr(0x2400 + code) for code in range(0x20) if chr(code) not in "\n\t"}
    table[0x7F] = "\u2421"
    for code in [*range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]:
        table[code] = f"<U+{code:04X}>"
    return table


VISIBLE = _visible_table()


def visible(text: str) -> str:
    """``text`` with its control characters shown, not obeyed by the terminal."""
    return text.translate(VISIBLE)


def visible_text(text: Text) -> Text:
    """``text`` with its control characters shown (see ``visible``), its styles on the same characters."""
    plain = text.plain
    shown = visible(plain)
    if shown == plain:
        return text
    # Where each character of ``plain`` starts in ``shown`` (a stand-in is longer than what it stands for).
    starts = [0]
    for character in plain:
        starts.append(starts[-1] + len(VISIBLE.get(ord(character), character)))
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
        return super()._render_buffer(
            segment if segment.control else Segment(visible(segment.text), segment.style, None)
            for segment in buffer
        )


console = SafeConsole()
error_console = SafeConsole(stderr=True)

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
    error_console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


@contextmanager
def api_errors() -> Iterator[None]:
    try:
        yield
    except ApiError as exc:
        fail(f"{exc.message} ({exc.status} {exc.code})" if exc.status else exc.message)


def when(value: datetime | None) -> str:
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S") if value else "—"


def styled(value: str, styles: dict[str, str]) -> Text:
    return Text(value, style=styles.get(value) or "")


def print_json(value: Any) -> None:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    elif isinstance(value, list):
        value = [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    typer.echo(json.dumps(value, indent=2))


def cell(value: Any) -> Text:
    """A table cell: styled text as it is; anything else as plain text. Values come from alerts, people and
    files, so a "[/]" in a summary must print as itself, not as markup (which raised an error). Control
    characters are shown as their stand-ins already here, so that Rich measures the column with them."""
    if isinstance(value, Text):
        return visible_text(value)
    return Text(visible("—" if value is None else str(value)))


class _Table(Table):
    """A table whose id columns keep their width. Rich's last resort for a narrow terminal takes width from
    every column alike, then gives an id column back its ``min_width``, which left the table wider than the
    terminal; here the width comes from the other columns instead."""

    def _calculate_column_widths(self, console: Console, options: ConsoleOptions) -> list[int]:
        widths = super()._calculate_column_widths(console, options)
        excess = sum(widths) - options.max_width
        if excess <= 0:
            return widths
        # What each other column can give, keeping one character besides its padding.
        room = [
            0 if column.min_width is not None else max(0, width - self._get_padding_width(index) - 1)
            for index, (column, width) in enumerate(zip(self.columns, widths, strict=True))
        ]
        return ratio_reduce(excess, room, room, widths)


@dataclass(frozen=True)
class IdColumn:
    """A table column of ids and refs (``ALR-1234``, ``INC-7``, ``MW-3``, a number): one is never wrapped or
    cut, however narrow the terminal, since it is what a person types next (``alerts ack ALR-1234``). The
    other columns wrap to make room. A cell of several words (``inhibited by ALR-12``) may wrap between
    them, never inside one."""

    header: str

    def add_to(self, table: Table, cells: Sequence[Text]) -> None:
        """Add this column to ``table``, as wide as its widest word (the header's too) at the least."""
        words = [word for text in (Text(self.header), *cells) for word in text.plain.split()]
        widest = max((cell_len(word) for word in words), default=1)
        single_words = all(len(text.plain.split()) <= 1 for text in cells)
        table.add_column(self.header, no_wrap=single_words, min_width=widest, overflow="fold")


def build_table(
    title: str | None,
    columns: Sequence[str | IdColumn],
    rows: Sequence[Sequence[Any]],
    *,
    row_styles: Sequence[str | None] | None = None,
    caption: str | None = None,
) -> Table:
    cells = [[cell(value) for value in row] for row in rows]
    output = _Table(
        title=escape(title) if title else None,
        title_justify="left",
        header_style="bold",
        caption=escape(caption) if caption else None,
        caption_justify="left",
    )
    for index, column in enumerate(columns):
        if isinstance(column, IdColumn):
            column.add_to(output, [row[index] for row in cells if index < len(row)])
        else:
            output.add_column(column)
    for index, row in enumerate(cells):
        output.add_row(*row, style=row_styles[index] if row_styles else None)
    return output


def bar(value: float, most: float, style: str, width: int = 12) -> Text:
    """A bar for a table cell: ``value`` against the largest ``most`` (at least one block when not zero)."""
    blocks = max(1, round(width * value / most)) if value > 0 and most > 0 else 0
    return Text("█" * blocks, style=style)


def table(title: str | None, columns: Sequence[str | IdColumn], rows: Sequence[Sequence[Any]]) -> None:
    console.print(build_table(title, columns, rows))


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
ForOption = Annotated[str | None, typer.Option("--for", help="How long, e.g. 30m, 2h or 1d.")]
UntilOption = Annotated[
    str | None, typer.Option("--until", help="The end, ISO 8601 (local time without an offset).")
]


def one_end(duration: str | None, until: str | None) -> str | None:
    """Exactly one of ``--for`` and ``--until``; the ``--until`` instant with its offset (None with --for)."""
    if (duration is None) == (until is None):
        fail("give either --for (a duration) or --until (an end time)")
    return instant(until, "--until")


def instant(value: str | None, option: str) -> str | None:
    """Accept ISO 8601 with an offset; a time without one is taken as this machine's local time."""
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
            parsed = parsed.astimezone()
        except (OverflowError, ValueError):
            raise typer.BadParameter(
                f"{value!r} is too far off to be a time here; give a year from 1970 to 2200",
                param_hint=option,
            ) from None
    return parsed.isoformat()
