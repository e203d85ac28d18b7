"""Checks on a parsed JSON body that the raw bytes can only hint at."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

NUL_MESSAGE = "text must not contain NUL (\\u0000) characters"
SURROGATE_MESSAGE = (
    "text must not contain a lone UTF-16 surrogate (\\ud800 to \\udfff not in a pair): send the character"
    " itself or its whole surrogate pair"
)
NOT_JSON = "the body is not valid JSON"
NOT_UTF8 = "the body is not valid UTF-8"
TOO_DEEP = "the body is nested too deeply"


def decode_error(reason: str, document: Any, position: int | None) -> str:
    """What is wrong with a body that is not JSON, with its line and column when the body is at hand:
    ``the body is not valid JSON: Expecting ',' delimiter: line 1 column 9 (char 8)``."""
    if isinstance(document, bytes):
        document = document.decode("utf-8", errors="replace")
    if isinstance(document, str) and position is not None and 0 <= position <= len(document):
        reason = str(json.JSONDecodeError(reason, document, position))
    return f"{NOT_JSON}: {reason}"


def storable_text(text: str) -> str:
    """Text both databases can store: PostgreSQL stores no NUL, and lone surrogates (undecodable bytes a
    parser kept, or an exception's message) are not UTF-8. Both become replacement characters."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")


def nul_field(data: Any) -> str | None:
    """The dotted path of a key or string in ``data`` that holds a NUL character, else None.

    A body's bytes containing ``\\u0000`` only hint at one: ``"C:\\\\u0000dir"`` is a backslash and letters.
    PostgreSQL cannot store NUL in text, and no field of Warroom's means one."""
    return _field_where(data, _has_nul)


def surrogate_field(data: Any) -> str | None:
    """The dotted path of a key or string in ``data`` that holds a lone UTF-16 surrogate (a JSON escape such
    as ``"\\ud800"`` not in a pair), else None. Such text is not UTF-8: neither database can store it."""
    return _field_where(data, _has_surrogate)


def surrogate_escape_in(body: bytes) -> bool:
    """Whether a JSON body's bytes hint at a surrogate escape (``\\ud800`` to ``\\udfff``, either case): a
    byte search unless they do, since only such a body can hold a lone surrogate once parsed (raw surrogate
    bytes are not UTF-8, and no body holding them is read as JSON). A pair (an escaped emoji) hints too."""
    return (b"\\ud" in body or b"\\uD" in body) and _SURROGATE_ESCAPE.search(body) is not None


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _has_surrogate(text: str) -> bool:
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _field_where(data: Any, found: Callable[[str], bool]) -> str | None:
    """The dotted path of the first key or string in ``data`` that ``found`` holds true of, else None. Keys on
    the path are named with their NUL or lone surrogates escaped, so that the path itself can be answered."""
    pending: list[tuple[str, Any]] = [("", data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if found(value):
                return _shown(path) or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                key_path = f"{path}.{key}" if path else str(key)
                if found(key):
                    return _shown(key_path)
                pending.append((key_path, item))
        elif isinstance(value, list):
            for number, item in enumerate(value):
                pending.append((f"{path}.{number}" if path else str(number), item))
    return None


def _shown(path: str) -> str:
    """``path`` with its NUL and lone surrogates written as JSON escapes (``\\u0000``, ``\\ud800``)."""
    path = path.replace("\x00", "\\u0000")
    if _has_surrogate(path):
        path = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in path)
    return path


def replace_nul(data: Any) -> Any:
    """``data`` with every NUL character in its keys and strings replaced by U+FFFD, changed in place (a
    string on its own is returned replaced): for senders that cannot fix a body and send it again, whose
    alerts are kept with the character marked rather than lost with their whole delivery."""
    if isinstance(data, str):
        return data.replace("\x00", "\ufffd")
    pending: list[Any] = [data]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if any("\x00" in key for key in value):
                items = [(key.replace("\x00", "\ufffd"), item) for key, item in value.items()]
                value.clear()
                value.update(items)
            for key, item in value.items():
                if isinstance(item, str):
                    if "\x00" in item:
                        value[key] = item.replace("\x00", "\ufffd")
                elif isinstance(item, dict | list):
                    pending.append(item)
        elif isinstance(value, list):
            for number, item in enumerate(value):
                if isinstance(item, str):
                    if "\x00" in item:
                        value[number] = item.replace("\x00", "\ufffd")
                elif isinstance(item, dict | list):
                    pending.append(item)
    return data
