"""The ``quoted`` filter of the notification templates: multi-line text from outside (an incident's summary,
which an alert's sender or a customer wrote; an update's message) shown as a quotation, so its lines cannot
pass for the message's own ("Acknowledge: https://evil.example/…", "Commander: alice")."""

from __future__ import annotations

import unicodedata
from typing import Any

from jinja2 import pass_eval_context
from jinja2.nodes import EvalContext
from markupsafe import Markup, escape

# Controls (C0 but the tab, C1), formatting characters (direction overrides and isolates, LRM/RLM, zero-width
# spaces): they move, hide or colour text (ESC[31m on a terminal) inside the quotation or past its end. The
# zero-width joiner stays: emoji sequences need it. Line and paragraph separators are line breaks
# (``str.splitlines``), so each starts a quoted line of its own.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf"})
_KEPT = frozenset({"\t", "\u200d"})
TEXT_MARK = "> "
# Inline style: mail clients drop <style> blocks. pre-wrap keeps the sender's indentation and runs of spaces;
# the <br>s keep the lines where a client drops the style too.
_HTML_OPEN = Markup(
    '<blockquote style="margin: 0 0 1em 0; padding: 0 0 0 0.8em; border-left: 3px solid #bbb; '
    'white-space: pre-wrap">'
)


def _visible(line: str) -> str:
    return "".join(c for c in line if c in _KEPT or unicodedata.category(c) not in _HIDDEN_CATEGORIES)


def quoted_lines(text: str) -> list[str]:
    """``text``'s lines as they are quoted: hidden characters dropped, trailing space trimmed, a run of blank
    lines made one, none first or last."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = _visible(raw).rstrip()
        if line or (lines and lines[-1]):
            lines.append(line)
    while lines and not lines[-1]:
        lines.pop()
    return lines


@pass_eval_context
def quoted(eval_ctx: EvalContext, value: Any) -> str:
    """``{{ incident.summary | quoted }}``: in a text part, each line after ``> `` (a blank one as ``>``, as
    Markdown and Slack's mrkdwn quote); in an HTML part, a ``<blockquote>`` of the escaped lines joined by
    ``<br>``. Empty for None or text with nothing visible; a missing value fails, as everywhere."""
    if value is None:
        return ""
    lines = quoted_lines(str(value))
    if not lines:
        return ""
    if eval_ctx.autoescape:
        return _HTML_OPEN + Markup("<br>").join(escape(line) for line in lines) + Markup("</blockquote>")
    return "\n".join(f"{TEXT_MARK}{line}" if line else TEXT_MARK.rstrip() for line in lines)


@pass_eval_context
def visible(eval_ctx: EvalContext, value: Any) -> str:
    """``{{ message | visible }}``: the text's lines as ``quoted`` cleans them, not marked as a quotation (for
    people outside the org, who read an update the org wrote for them); line breaks kept in HTML."""
    if value is None:
        return ""
    lines = quoted_lines(str(value))
    if eval_ctx.autoescape:
        return Markup("<p>") + Markup("<br>").join(escape(line) for line in lines) + Markup("</p>")
    return "\n".join(lines)


# Registered in every environment that renders or checks a notification template (``render``, ``config``).
FILTERS = {"quoted": quoted, "visible": visible}
