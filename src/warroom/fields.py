"""Field types the domains' request schemas share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


# Text that must say something: whitespace alone is refused (and kept as sent otherwise).
NonBlank = Annotated[str, AfterValidator(_not_blank)]
