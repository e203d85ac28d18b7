"""Help texts as the terminal shows them, and the help strings several commands share."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Annotated, Any

import typer
from typer._click.exceptions import BadParameter

from warroom.cli.parsing import NegativeNumbersGroup

# A line that starts an item of a list; an indented line, which goes on with an item or is an example's.
_ITEM = re.compile(r"[-*•]\s|\d+[.)]\s")
_INDENTED = re.compile(r"\s")


def reflow(text: str) -> str:
    """``text`` (a docstring, an option's help) with each paragraph on one line: Rich wraps it to the
    terminal. A docstring's own line breaks were made for the source file; Typer keeps them (in the command
    lists, and in every paragraph after the first), so at 80 columns a sentence broke off mid-line and went
    on below. Blank lines still separate paragraphs; a paragraph that is a list (lines starting ``- ``,
    ``* `` or ``1. ``) or holds an example (indented lines), or that starts with click's ``\\b``, keeps its
    lines, an item's continuation lines joined to it. What follows a form feed (``\\f``, hidden from help)
    stays as it is."""
    shown, feed, hidden = inspect.cleandoc(text).partition("\f")
    paragraphs = []
    for paragraph in shown.strip().split("\n\n"):
        lines = paragraph.split("\n")
        if paragraph.startswith("\b") or not any(
            _ITEM.match(line) or _INDENTED.match(line) for line in lines[1:]
        ):
            paragraphs.append(
                paragraph if paragraph.startswith("\b") else " ".join(line.strip() for line in lines)
            )
            continue
        kept: list[str] = []
        in_item = False
        for line in lines:
            if _ITEM.match(line):
                kept.append(line.rstrip())
                in_item = True
            elif in_item and line.strip():
                kept[-1] = f"{kept[-1]} {line.strip()}"  # the item goes on
            else:
                kept.append(line.rstrip())  # an example's line, or the text before a list
        paragraphs.append("\n".join(kept))
    return "\n\n".join(paragraphs) + feed + hidden


def reflow_help(command: Any) -> None:
    """Reflow (``reflow``) the help of ``command``, of its parameters and, for a group, of every command
    under it."""
    if command.help:
        command.help = reflow(command.help)
    if command.short_help:
        command.short_help = reflow(command.short_help)
    for param in command.params:
        if getattr(param, "help", None):
            param.help = reflow(param.help)
    for sub in getattr(command, "commands", {}).values():
        reflow_help(sub)


class WarroomGroup(NegativeNumbersGroup):
    """The ``warroom`` command: Typer builds it with every command under it on each run, so its help is
    reflowed here, once for all of them, rather than in each docstring; and a value an option refuses is
    said as click says it, without pydantic's "Value error, " (Typer reads an enum option with pydantic:
    "Invalid value for '--role': Value error, 'root' is not one of …")."""

    # Typed loosely: Typer's click types are its private copy's.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        reflow_help(self)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except BadParameter as exc:
            exc.message = exc.message.removeprefix(_PYDANTIC_PREFIX)
            raise


_PYDANTIC_PREFIX = "Value error, "


def either(values: Iterable[str]) -> str:
    """``values`` as a sentence lists them: "pending, sent, failed, dead or withdrawn". Help that lists an
    enum's values from the enum names each of them, new ones too."""
    named = list(values)
    return ", ".join(named[:-1]) + f" or {named[-1]}" if len(named) > 1 else "".join(named)


def environment_epilog(variables: dict[str, str], more: str = "") -> str:
    """A command's epilog naming the environment variable of each of its options (``variables``: option to
    variable), one to a line, then the paragraph ``more``. Typer's options panel leaves an option's help a
    narrow column at 80 columns, and Rich cut a name longer than it with "…" (``WARROOM_MAIL_INTAKE_P…``):
    the epilog, below the panel, has the terminal's whole width, so each name is shown whole. (Typer takes
    the indentation the lines share away, so they have none.)"""
    width = max(len(option) for option in variables)
    lines = [f"{option.ljust(width)}  {variable}" for option, variable in variables.items()]
    table = "\n".join(["From the environment (an option given wins over its variable):", *lines])
    return f"{table}\n\n{more}" if more else table


# The header names a signing integration checks unless told others (``integration create`` and ``update``),
# said below their options: in an option's help, at 80 columns, the longer one was cut.
GRAFANA_HEADERS_EPILOG = (
    "Unless --signature-header and --timestamp-header name others, a signing integration reads Grafana's "
    "headers:\nX-Grafana-Alerting-Signature\nX-Grafana-Alerting-Signature-Timestamp"
)


# What every duration option takes, as the shared parser reads it (``warroom.durations.Duration``: a number
# and a unit, or several, or ISO 8601): one wording, so that no option seems to take less than the others.
DURATION_FORMS = "90s, 30m, 2h, 1h30m, 7d or 1w, or ISO 8601 (PT2H)"


def ref_argument(what: str, example: str) -> Any:
    """The argument naming one thing (``INC-12``, ``ALR-7``, ``MW-3``): ``what`` it is, with an example."""
    return typer.Argument(help=f"The {what}, e.g. {example} or {example.split('-')[-1]}.")


IncidentRef = Annotated[str, ref_argument("incident", "INC-12")]
AlertRef = Annotated[str, ref_argument("alert", "ALR-12")]
WindowRef = Annotated[str, ref_argument("maintenance window", "MW-3")]
