"""Places in a severity matrix of any size: the built-in defaults (P0-P3, and the four alert severities) are
written for four levels, and a file's own matrix may have two or six."""

from __future__ import annotations

# The built-in matrix's levels, most severe first, as the built-in defaults name them.
BUILT_IN_LEVELS = ("P0", "P1", "P2", "P3")


def matrix_level(severity_ids: list[str], position: int, of: int = len(BUILT_IN_LEVELS)) -> str:
    """The level of ``severity_ids`` (most severe first) at the place ``position`` has among ``of`` places:
    the first is the most severe level, the last the least, the others spread between them in order. So the
    built-in P2 is the second of three levels, and the last of two."""
    last = len(severity_ids) - 1
    return severity_ids[round(position * last / (of - 1))] if of > 1 else severity_ids[0]


def built_in_level(severity_ids: list[str], level: str) -> str:
    """A built-in level (``P2``) as this matrix has it: itself in a matrix that has all of P0-P3, else the
    level at its place (``matrix_level``), so that in a P1-P4 matrix the built-in P1 is its P2, as a critical
    alert's level is. A default the author did not write never names a level the file lacks."""
    if level not in BUILT_IN_LEVELS or all(built_in in severity_ids for built_in in BUILT_IN_LEVELS):
        return level
    return matrix_level(severity_ids, BUILT_IN_LEVELS.index(level))
