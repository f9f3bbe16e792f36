"""Long `IN (...)` lists in slices that every engine accepts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Final, TypeVar

_T = TypeVar("_T")

# SQLite's default limit on bound parameters is 999; stay under it with room to spare.
IN_CHUNK: Final = 900


def chunks(items: Sequence[_T], size: int = IN_CHUNK) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
