"""The envelope every paged list of the API answers with: ``{"items", "total", "limit", "offset"}``.

Each list names its own page (``class IncidentPage(Page[IncidentRead])``), so ``/openapi.json`` has one
component per list, named for it, and a list's docstring can say what its order and cursors are.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list.

    - ``items``: the rows of this page, in the list's order.
    - ``total``: how many rows the list's filters and cursor (``before_id``, or a timeline's ``before_seq``
      and ``after_seq``) select, before ``limit`` and ``offset``: with a cursor, what is left after it. So
      ``total - offset - len(items)`` rows come after this page.
    - ``limit``: the most rows a page holds, as asked (or the default).
    - ``offset``: how many of the selected rows were skipped before this page, as asked.
    """

    items: list[ItemT]
    total: int
    limit: int
    offset: int
