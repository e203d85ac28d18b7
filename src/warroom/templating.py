"""User-written templates: what one sees for a name, key or attribute it was not given, and the sandbox
that bounds what one can build."""

from __future__ import annotations

import ctypes
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import update_wrapper
from typing import Any

from jinja2 import StrictUndefined, Template, Undefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import FilterArgumentError, SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from jinja2.utils import generate_lorem_ipsum
from markupsafe import EscapeFormatter, Markup


class FalsyStrictUndefined(StrictUndefined):
    """Strict, except that a missing value can be tested: ``{{ labels.instance }}`` still fails on an alert
    without ``instance`` (it would render empty and say nothing), but ``{{ labels.instance or 'n/a' }}``,
    ``{% if labels.instance %}`` and ``{% if labels.env == 'prod' %}`` say what to do without it, as
    ``default`` and ``is defined`` do: it tests false and equals nothing but another missing value."""

    # StrictUndefined types these as always raising; the ignores let them answer.
    __slots__ = ()
    __eq__ = Undefined.__eq__  # type: ignore[assignment]
    __ne__ = Undefined.__ne__  # type: ignore[assignment]
    __hash__ = Undefined.__hash__  # type: ignore[assignment]

    def __bool__(self) -> bool:  # type: ignore[override]
        return False


# What one template may build. A template is the org file's text, run on every alert or message: one that
# would build a gigabyte (``'ab' * 50000000``) fails instead, as any failing template does.
MAX_LENGTH = (
    1_000_000  # characters of any string (or items of any list) an operation builds, and of the output
)
MAX_WIDTH = 10_000  # a padding width or precision: center, indent, ljust, '{:>N}', '%Ns'
MAX_INT_BITS = 100_000  # an integer a template computes (2 ** 10 ** 9 would take minutes)
MAX_LIPSUM = 100  # paragraphs, and words in one, of lipsum()
# Seconds one render may run: nested loops build nothing yet can take hours, and a render holds the thread
# that routes alerts or sends messages.
MAX_RENDER_SECONDS = 2.0

_PERCENT_SPEC = re.compile(r"%(?:\([^)]{0,200}\))?[-#0 +]{0,20}(\*|\d+)?(?:\.(\*|\d+))?")
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class TemplateLimitError(SecurityError):
    """A template went past what the sandbox lets one build (``MAX_LENGTH``, ``MAX_WIDTH``...)."""


class TemplateTimeLimitError(TemplateLimitError):
    """A render ran past ``MAX_RENDER_SECONDS``."""


class _Render:
    __slots__ = ("deadline", "interrupted", "thread_id")

    def __init__(self, deadline: float, thread_id: int) -> None:
        self.deadline = deadline
        self.thread_id = thread_id
        self.interrupted = False


def interrupt_thread(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in that thread at its next bytecode boundary (a loop's jump back, a call): the only
    way to stop pure Python code from outside (a call blocked in C, a sleep or a socket read, returns first).
    None takes back one not yet raised. Also used by the alert handlers' time limit."""
    # (None is passed as NULL, which clears; ``py_object(None)`` would be an object.)
    target = None if exception is None else ctypes.py_object(exception)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


class _RenderWatchdog:
    """One daemon thread that interrupts each render still running at its deadline. It sleeps until the
    next deadline, or while no render runs; a render whose deadline comes before its waking wakes it."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._renders: dict[int, _Render] = {}
        self._thread: threading.Thread | None = None
        self._wakes_at: float | None = None  # None: asleep until a render starts

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        render = _Render(time.monotonic() + seconds, threading.get_ident())
        with self._condition:
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="template-watchdog", daemon=True)
                self._thread.start()
            if self._wakes_at is None or render.deadline < self._wakes_at:
                self._condition.notify()
            self._renders[id(render)] = render
        try:
            yield
        except TemplateTimeLimitError:
            raise TemplateTimeLimitError(f"the template ran longer than {seconds:g} s, its limit") from None
        finally:
            with self._condition:
                self._renders.pop(id(render), None)
                if render.interrupted:
                    # Sent just as the render ended: it must not strike the code after it.
                    interrupt_thread(render.thread_id, None)

    def _watch(self) -> None:
        with self._condition:
            while True:
                now = time.monotonic()
                for render in self._renders.values():
                    if not render.interrupted and render.deadline <= now:
                        render.interrupted = True
                        interrupt_thread(render.thread_id, TemplateTimeLimitError)
                upcoming = [render.deadline for render in self._renders.values() if not render.interrupted]
                self._wakes_at = min(upcoming) if upcoming else None
                self._condition.wait(None if self._wakes_at is None else self._wakes_at - now)


_watchdog = _RenderWatchdog()


def time_limit(seconds: float | None = None) -> AbstractContextManager[None]:
    """Runs the block (a render, an expression) for at most ``seconds`` (``MAX_RENDER_SECONDS``), then
    fails it with ``TemplateTimeLimitError``."""
    return _watchdog.limit(MAX_RENDER_SECONDS if seconds is None else seconds)


class LimitedTemplate(Template):
    def render(self, *args: Any, **kwargs: Any) -> str:
        with time_limit():
            return super().render(*args, **kwargs)


def _too_long(size: int, what: str) -> None:
    if size > MAX_LENGTH:
        raise TemplateLimitError(f"{what} would be {size} long; a template may build at most {MAX_LENGTH}")


def _too_wide(width: Any, what: str) -> None:
    if isinstance(width, int) and width > MAX_WIDTH:
        raise TemplateLimitError(f"{what} {width} is too wide; at most {MAX_WIDTH}")


def checked(value: Any) -> Any:
    """``value``, if it is within the limits (a string, list or number a template built)."""
    if isinstance(value, str | dict | set):
        _too_long(len(value), "a value")
    elif isinstance(value, list | tuple):
        _too_long(len(value), "a value")
        # A list of many long strings is large though each string is within the limit.
        _too_long(sum(len(item) if isinstance(item, str) else 1 for item in value), "a list's text")
    elif isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise TemplateLimitError(f"a number of {value.bit_length()} bits is too large")
    return value


def _check_spec(spec: str) -> None:
    """A ``format`` spec (``>10``, ``.3f``): its width and precision within ``MAX_WIDTH``."""
    for digits in re.findall(r"\d+", spec):
        if len(digits) > 6:  # int() of a long run of digits is slow itself
            raise TemplateLimitError(f"format width {digits[:6]}... ({len(digits)} digits) is too wide")
        _too_wide(int(digits), "format width")


def checked_percent(text: str, values: Any) -> str:
    """``text % values``, with every width and precision in ``text`` within ``MAX_WIDTH``."""
    starred = False
    for found in _PERCENT_SPEC.finditer(text):
        for part in found.groups():
            if part == "*":
                starred = True
            elif part is not None:
                _check_spec(part)
    if starred:
        for value in values if isinstance(values, tuple) else (values,):
            _too_wide(value, "format width")
    return str(checked(text % values))


class _LimitedFormatter(SandboxedFormatter):
    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        return checked(super().format_field(value, format_spec))


class _LimitedEscapeFormatter(_LimitedFormatter, EscapeFormatter):
    pass


class _LimitedCodeGenerator(CodeGenerator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._called: set[int] = set()  # the Getattr nodes a call is made on (``labels.items()``)

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.Getattr):
            self._called.add(id(node.node))
        super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        if id(node) not in self._called:
            super().visit_Getattr(node, frame)
            return
        # Called: the method, as Jinja reads it, whatever fields the data has (``tags.items()`` on tags with
        # an "items" key of their own); the environment's getattr reads a field before a method.
        self.write("environment.called_getattr(")
        self.visit(node.node, frame)
        self.write(f", {node.attr!r})")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        # ``a ~ b``: each part is within the limits, so the join is checked after it is built.
        self.write("environment.checked(")
        super().visit_Concat(node, frame)
        self.write(")")


def _limited_concat(pieces: Iterable[str]) -> str:
    """What a template (a block, a macro, the whole output) yields, joined: stops at ``MAX_LENGTH``."""
    kept: list[str] = []
    size = 0
    for piece in pieces:
        size += len(piece)
        _too_long(size, "the rendered text")
        kept.append(piece)
    return "".join(kept)


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    if n > MAX_LIPSUM or max > MAX_LIPSUM or min > MAX_LIPSUM:
        raise TemplateLimitError(f"lipsum: at most {MAX_LIPSUM} paragraphs of at most {MAX_LIPSUM} words")
    return str(generate_lorem_ipsum(n=n, html=html, min=min, max=max))


def _join_size(items: list[Any], separator: str) -> int:
    return sum(len(item) if isinstance(item, str) else 0 for item in items) + len(separator) * len(items)


def _replace_size(text: str, old: str, new: str, count: int) -> int:
    found = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _bounded_items(values: Iterable[Any]) -> list[Any]:
    """``list(values)``, failing as soon as the list's text passes ``MAX_LENGTH``: ``map`` is lazy, so
    ``range(10 ** 6) | map('center', 10000) | list`` would hold ten gigabytes before any check saw it."""
    items = []
    size = 0
    for item in values:
        size += len(item) if isinstance(item, str) else 1
        _too_long(size, "a list's text")
        items.append(item)
    return items


def _bounded_input(function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter that makes a list of its input (``list``, ``sort``...), given that list built with checks."""
    # A filter marked to be passed the environment or context takes its input second.
    at = 0 if getattr(function, "jinja_pass_arg", None) is None else 1

    def bounded(*args: Any, **kwargs: Any) -> Any:
        if len(args) > at and not isinstance(args[at], str | Mapping):
            args = (*args[:at], _bounded_items(args[at]), *args[at + 1 :])
        return function(*args, **kwargs)

    return update_wrapper(bounded, function)


def _wrap_filters(filters: dict[str, Callable[..., Any]]) -> None:
    """The built-in filters that can multiply their input check what they would build first."""
    for name in ("list", "sort", "unique", "reverse", "batch", "slice", "groupby"):
        filters[name] = _bounded_input(filters[name])
    center, indent, replace, join = filters["center"], filters["indent"], filters["replace"], filters["join"]

    def do_center(value: Any, width: int = 80) -> Any:
        _too_wide(width, "center width")
        return center(value, width)

    def do_indent(value: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> Any:
        pad = len(width) if isinstance(width, str) else width
        _too_wide(pad, "indent width")
        _too_long(len(str(value)) * (1 + pad), "indented text")
        return indent(value, width, first, blank)

    @pass_eval_context
    def do_replace(eval_ctx: Any, value: Any, old: Any, new: Any, count: int | None = None) -> Any:
        _too_long(
            _replace_size(str(value), str(old), str(new), -1 if count is None else count), "replaced text"
        )
        return replace(eval_ctx, value, old, new, count)

    @pass_eval_context
    def do_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> Any:
        items = list(value)
        if attribute is None:
            _too_long(_join_size(items, str(d)), "joined text")
        return checked(join(eval_ctx, items, d, attribute))

    def do_format(value: Any, *args: Any, **kwargs: Any) -> str:
        if args and kwargs:
            raise FilterArgumentError("can't handle positional and keyword arguments at the same time")
        return checked_percent(str(value), kwargs or args)

    filters.update(center=do_center, indent=do_indent, replace=do_replace, join=do_join, format=do_format)


# The JSON values templates read (payloads, labels, annotations): their fields are data, not their methods.
_DATA_TYPES = (dict, list, tuple, str, int, float, bool)


class _DataMethod:
    """Marks a data value's method named in a template (``payload.values``, ``labels.items``)."""

    __slots__ = ()
    method: Callable[..., Any]


_DATA_METHOD_TYPES: dict[type[Undefined], type[Undefined]] = {}


def _data_method_type(undefined: type[Undefined]) -> type[Undefined]:
    """The environment's missing value, callable: ``payload.values`` where the payload has no ``values``
    reads as a missing field does (empty in a webhook format, a failure in a rule title), not as
    ``<built-in method values of dict object at 0x7f…>``, whose address changed the text, and so the dedup
    key, on every delivery; ``labels.items()`` still calls the method."""

    class DataMethod(undefined, _DataMethod):  # type: ignore[misc, valid-type]
        __slots__ = ("method",)

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return self.method(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            if name == "jinja_pass_arg":  # Context.call asks every callable; a missing value would answer
                raise AttributeError(name)
            return super().__getattr__(name)

    return _DATA_METHOD_TYPES.setdefault(undefined, DataMethod)


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """The sandbox of every user-written template (rules, webhook formats, enrichment, channel messages):
    read-only, and bounded in what it can build. ``*``, ``**``, ``%``, ``+`` and ``~``, padding (``center``,
    ``indent``, format widths), ``replace`` and ``join`` check the size of what they would make, and the
    rendered text is cut off at ``MAX_LENGTH``: a template past a limit fails (``TemplateLimitError``) as one
    meeting a missing label does."""

    code_generator_class = _LimitedCodeGenerator
    template_class = LimitedTemplate
    concat = staticmethod(_limited_concat)
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["lipsum"] = _lipsum
        _wrap_filters(self.filters)

    checked = staticmethod(checked)

    def getattr(self, obj: Any, attribute: str) -> Any:
        # ``payload.items`` is the payload's ``items`` field when it has one (tools' JSON often does), not
        # the dict's method, which Jinja prefers; a method of a data value is a missing value unless called.
        if isinstance(obj, Mapping) and attribute in obj:
            return obj[attribute]
        value = super().getattr(obj, attribute)
        if (
            isinstance(obj, _DATA_TYPES)
            and isinstance(value, types.BuiltinMethodType)
            and getattr(value, "__self__", None) is obj
        ):
            hint = f"{type(obj).__name__} has no field {attribute!r}"
            missing = _data_method_type(self.undefined)(hint=hint, obj=obj, name=attribute)
            missing.method = value  # type: ignore[attr-defined]
            return missing
        return value

    def called_getattr(self, obj: Any, attribute: str) -> Any:
        """``obj.attribute(...)``: the sandbox's own reading, the method before a field of that name."""
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | list | tuple) and isinstance(times, int):
                    _too_long(len(sequence) * times, "a repeated value")
        elif operator == "**":
            if (
                isinstance(left, int)
                and isinstance(right, int)
                and abs(left) > 1
                and right * abs(left).bit_length() > MAX_INT_BITS
            ):
                raise TemplateLimitError(f"{left} ** {right} is too large")
        elif operator == "%" and isinstance(left, str):
            return checked_percent(left, right)
        return checked(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(__obj, _DataMethod):
            __obj = __obj.method  # the method itself, for the checks below and the sandbox's own
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, types.BuiltinMethodType):
            args = _check_str_method(owner, __obj.__name__, args, kwargs)
        return checked(super().call(__context, __obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # As the sandbox's own, with a formatter that checks each field's width.
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner: Any = value.__self__
        if not isinstance(owner, str):
            return None
        str_type: type[str] = type(owner)
        is_format_map = value.__name__ == "format_map"
        formatter: SandboxedFormatter
        if isinstance(owner, Markup):
            formatter = _LimitedEscapeFormatter(self, escape=owner.escape)
        else:
            formatter = _LimitedFormatter(self)

        def wrapper(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs = args[0]
                args = ()
            return str_type(checked(formatter.vformat(owner, args, kwargs)))

        return update_wrapper(wrapper, value)


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A string method that can build far more than it is given (``'x'.center(10**9)``) is checked first;
    the arguments to call it with are returned."""
    if name in _WIDTH_METHODS and args:
        _too_wide(args[0], f"{name} width")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        _too_wide(tabsize, "tab size")
        if isinstance(tabsize, int):
            _too_long(len(text) + text.count("\t") * tabsize, "expanded text")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        count = args[2] if len(args) > 2 else kwargs.get("count", -1)
        _too_long(_replace_size(text, args[0], args[1], count), "replaced text")
    elif name == "join" and args:
        # Read once, here: join is given the list (a generator would be empty the second time).
        items = list(args[0])
        _too_long(_join_size(items, text), "joined text")
        return (items, *args[1:])
    return args
