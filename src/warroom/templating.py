"""What a user-written template sees for a name, key or attribute it was not given."""

from __future__ import annotations

from jinja2 import StrictUndefined, Undefined


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
