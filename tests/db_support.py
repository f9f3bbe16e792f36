"""What the tests of db/ share: a SQLite file with the proxy's writer thread on it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db.sqlite_threads import WriterThread


@dataclass(frozen=True)
class OnThread:
    path: Path
    engine: AsyncEngine
    thread: WriterThread
