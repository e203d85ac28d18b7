"""One log record, one line: text from outside (an alert sender's group key, a peer's answer, an exception's
message) is logged with its control and bidi-formatting characters shown as escapes, as Python writes them
(``\\x1b``, ``\\r``, ``\\n``, ``\\t``, ``\\u202e``), so that it can neither forge a log line nor send
terminal escapes to whoever tails the log.

``OneLine`` is a filter for the long-running commands' handlers (``configure_logging``, and uvicorn's through
``uvicorn_options``). It escapes the formatted message (its arguments included). A traceback stays on several
lines, those its formatting puts there; the exception's message and notes are escaped as a message is, and
any other control character in it too. A line with nothing to escape is logged byte for byte as before.
"""

from __future__ import annotations

import copy
import logging
import re
import traceback
from types import TracebackType
from typing import Any

# C0 and C1 controls and DEL; the line and paragraph separators; the bidi embedding, override and isolate
# characters and the marks (ALM, LRM, RLM), which reorder what a terminal shows.
_BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
# The same but the newline: for a traceback, whose own lines end in one.
_UNSAFE_BUT_NEWLINE = re.compile(f"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    character = match.group()
    code = ord(character)
    return _SHORT.get(character) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def one_line(text: str) -> str:
    """``text`` with every control and bidi-formatting character shown as an escape: one line. When it has
    any, its backslashes are doubled too, so that an escape (``\\n``) and the same two characters sent as
    text (``\\\\n``) read apart; text with none is kept as it is."""
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_escape, text.replace("\\", "\\\\"))


def _escape_messages(exception: traceback.TracebackException, seen: set[int]) -> None:
    """Escape the texts of ``exception`` (and of those chained to it or grouped in it) that come from the
    exception object rather than the code: its message, its notes, a syntax error's text."""
    if id(exception) in seen:
        return
    seen.add(id(exception))
    # ``_str`` is where TracebackException keeps str(exception) (Python 3.11 to 3.13);
    # tests/test_log_lines.py checks that a message's newline is still escaped.
    if isinstance(getattr(exception, "_str", None), str):
        exception._str = one_line(exception._str)  # type: ignore[attr-defined]
    notes = getattr(exception, "__notes__", None)
    if isinstance(notes, list | tuple):
        exception.__notes__ = [one_line(note) if isinstance(note, str) else note for note in notes]
    for field in ("msg", "text", "filename"):  # a SyntaxError's
        value = getattr(exception, field, None)
        if isinstance(value, str):
            setattr(exception, field, one_line(value.rstrip("\n") if field == "text" else value))
    for linked in (exception.__cause__, exception.__context__, *(exception.exceptions or ())):
        if linked is not None:
            _escape_messages(linked, seen)


def format_exception(exc_info: ExcInfo) -> str:
    """The traceback as ``logging.Formatter.formatException`` has it, with its exceptions' messages on one
    line each and no control character but the newlines that end its lines."""
    kind, value, tb = exc_info
    exception = traceback.TracebackException(kind, value, tb, compact=True)
    _escape_messages(exception, set())
    text = _UNSAFE_BUT_NEWLINE.sub(_escape, "".join(exception.format(chain=True)))
    return text.removesuffix("\n")


class OneLine(logging.Filter):
    """Makes a record's message one line, and its traceback free of control characters but the newlines
    that end its lines (see the module's doc). Changes the record itself, once: the handlers after this
    one see it as written."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "warroom_one_line", False):
            return True
        try:
            message = record.getMessage()
        except Exception:  # the formatter meets it again and reports it (``Handler.handleError``)
            return True
        # A newline that ends the message forges nothing (the handler's own follows it): uvicorn ends some
        # of its lines with one, and they stay as they were.
        content = message.rstrip("\n")
        escaped = one_line(content)
        if escaped != content:
            record.msg, record.args = escaped, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = format_exception(record.exc_info)
        elif record.exc_text:  # a text made elsewhere: its newlines cannot be told apart, so kept
            record.exc_text = _UNSAFE_BUT_NEWLINE.sub(_escape, record.exc_text)
        if record.stack_info:
            record.stack_info = _UNSAFE_BUT_NEWLINE.sub(_escape, record.stack_info)
        record.warroom_one_line = True
        return True


def install(handler: logging.Handler) -> None:
    """Add ``OneLine`` to ``handler`` unless it has it."""
    if not any(isinstance(existing, OneLine) for existing in handler.filters):
        handler.addFilter(OneLine())


def uvicorn_log_config(base: dict[str, Any]) -> dict[str, Any]:
    """uvicorn's logging configuration ``base`` (a dictConfig), with ``OneLine`` on each of its handlers."""
    config = copy.deepcopy(base)
    config.setdefault("filters", {})["one_line"] = {"()": OneLine}
    for handler in config.get("handlers", {}).values():
        handler["filters"] = [*handler.get("filters", []), "one_line"]
    return config
