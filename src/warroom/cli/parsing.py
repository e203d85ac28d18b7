"""Reading a command line where click alone would read it wrong."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import typer
from typer._click.exceptions import UsageError
from typer.core import TyperCommand, TyperGroup, TyperOption

from warroom.durations import names_a_date, time_of_day_problem
from warroom.fields import MAX_ROW_ID

_NEGATIVE_NUMBER = re.compile(r"-[0-9]+")


class NegativeNumbersGroup(TyperGroup):
    """The top-level group: a negative number where an argument goes is that argument. Click reads the
    ``-1`` of ``warroom alerts show -1`` as an option it does not know ("No such option: -1"), so the person
    never hears that there is no alert -1 (or that an id is a positive number). A dash word that is neither
    a number nor an option is still refused as an unknown option."""

    # Typed loosely: Typer's click types are its private copy's.
    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        name, command, rest = super().resolve_command(ctx, args)
        if command is not None and any(_NEGATIVE_NUMBER.fullmatch(arg) for arg in rest):
            rest = numbers_as_arguments(command, ctx, rest)
        return name, command, rest


def numbers_as_arguments(command: Any, ctx: Any, args: list[str]) -> list[str]:
    """``args`` for ``command`` with its options (and their values) first, then ``--`` and its arguments in
    their order, so that a negative number among them is read as one; a group's subcommand gets the same."""
    values_taken: dict[str, int] = {}
    for param in command.get_params(ctx):
        if isinstance(param, TyperOption):  # the others (--help) take no value
            taken = 0 if param.is_flag or param.count else param.nargs
            values_taken.update((name, taken) for name in (*param.opts, *param.secondary_opts))
    options: list[str] = []
    arguments: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        if arg == "--":
            arguments.extend(args[index + 1 :])
            break
        if isinstance(command, TyperGroup) and not arg.startswith("-"):
            # A group's first argument names its subcommand; what follows is the subcommand's.
            subcommand = command.get_command(ctx, arg)
            if subcommand is None:
                return args
            return [*options, arg, *numbers_as_arguments(subcommand, ctx, args[index + 1 :])]
        if arg.startswith("-") and not _NEGATIVE_NUMBER.fullmatch(arg):
            options.append(arg)
            if "=" not in arg:
                taken = values_taken.get(arg, 0)  # an option's value is its own, "-1" too (--limit -1)
                options.extend(args[index + 1 : index + 1 + taken])
                index += taken
        else:
            arguments.append(arg)
        index += 1
    return [*options, "--", *arguments] if arguments else options


class OnceOnlyCommand(TyperCommand):
    """A command that refuses an option of one value given twice: click keeps the last one silently, so
    ``--since 2h --since 1d`` (or a filter of one value repeated as if it took several) would act on something
    other than what was asked. Repeatable options (lists) and flags are left alone."""

    # Typed loosely: Typer's click types are its private copy's.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # The parser only sorts the words (callbacks and conversions run later): a dry run to count them.
        _, _, order = self.make_parser(ctx).parse_args(args=list(args))
        seen: set[str | None] = set()
        for param in order:
            if not isinstance(param, TyperOption) or param.multiple or param.count or param.is_flag:
                continue
            if param.name in seen:
                raise UsageError(f"{'/'.join(param.opts)} was given twice; it takes one value", ctx)
            seen.add(param.name)
        result: list[str] = super().parse_args(ctx, args)
        return result


# --- list paging and periods ------------------------------------------------------------------------------

# ``--before-id`` of a newest-first list, read with ``row_number``.
BeforeIdOption = Annotated[
    str | None,
    typer.Option(
        "--before-id",
        help="Only what comes after this id in the list: give the last one shown to see the next page, which "
        "new arrivals do not shift as they do --offset's.",
    ),
]


def row_number(value: str | None, prefix: str | None, option: str) -> int | None:
    """An id as a list shows it (``ALR-37`` for ``prefix`` ALR) or as a number, for ``--before-id``."""
    if value is None:
        return None
    text = value.strip().upper()
    if prefix is not None:
        text = text.removeprefix(f"{prefix}-")
    if not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= MAX_ROW_ID:
        shown = f"like {prefix}-12 or 12" if prefix else "like 12"
        raise typer.BadParameter(f"{value!r} is not an id: write it {shown}", param_hint=option)
    return int(text)


def period_bound(value: str | None, option: str) -> str | None:
    """``--since``/``--until``: a duration (``2h``) goes as written; a time (``2026-12-07T09:00``) without an
    offset is this machine's local time, as everywhere in the CLI. A time of day without its date (``18:00``)
    is refused here, a usage error (exit 2), before anything is sent."""
    if value is None:
        return value
    problem = time_of_day_problem(value)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint=option)
    if not names_a_date(value):
        return value
    from warroom.cli.output import instant  # the CLI's one reading of a time

    return instant(value.strip(), option)


def now_moved_by(duration: str, option: str, *, sign: Literal[-1, 1], otherwise: str) -> str:
    """Now moved by ``duration`` (30m, 2h, 1d: with its unit, as the API takes one), back (``sign`` -1: how
    long ago) or ahead (+1), as an ISO 8601 time; anything else is a usage error naming ``option``, then
    ``otherwise`` (the other forms the option takes)."""
    from pydantic import TypeAdapter, ValidationError

    from warroom.durations import RequestDuration
    from warroom.fields import validation_message

    try:
        offset = TypeAdapter(RequestDuration).validate_python(duration.strip())
    except ValidationError as exc:
        raise typer.BadParameter(
            f"{validation_message(exc.errors()[0])}; {otherwise}", param_hint=option
        ) from None
    return (datetime.now(UTC) + sign * offset).isoformat()
