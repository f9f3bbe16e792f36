"""A fresh, migrated SQLite file with the proxy's writer thread on it, for the tests that go
through that thread (db/sqlite_threads.py, and the statements sent straight to sqlite3 there)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from crabglamp.db import make_engine
from crabglamp.db.sqlite_threads import WriterThread
from db_support import OnThread


@pytest.fixture
async def on_thread(sqlite_template: Path, tmp_path: Path) -> AsyncIterator[OnThread]:
    path = tmp_path / "threads.db"
    shutil.copyfile(sqlite_template, path)
    engine = make_engine(f"sqlite+aiosqlite:///{path}")
    thread = WriterThread(engine)
    try:
        yield OnThread(path, engine, thread)
    finally:
        await thread.close()
        await engine.dispose()
