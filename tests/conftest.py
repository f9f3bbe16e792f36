"""Every database test runs on SQLite and on PostgreSQL, each test on a fresh migrated database.

Both engines are migrated once per session into a template (a file for SQLite, a template
database for PostgreSQL) that each test copies, which is far cheaper than migrating per test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest
import time_machine
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from clocks import FIXED_CLOCKS
from crabglamp.db import make_engine
from crabglamp.migrate import upgrade

POSTGRES_ADMIN_URL = os.environ.get(
    "CRABGLAMP_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)
T = TypeVar("T")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(params=list(FIXED_CLOCKS.values()), ids=list(FIXED_CLOCKS))
def fixed_clock(request: pytest.FixtureRequest) -> Iterator[datetime]:
    """The wall clock of this test process reads each fixed moment in turn (and runs on from
    it), so a test that asks for it shows it holds on month ends, month starts and 1 January."""
    moment: datetime = request.param
    with time_machine.travel(moment, tick=True):
        yield moment


def _postgres_problem() -> str | None:
    async def probe() -> None:
        engine = create_async_engine(POSTGRES_ADMIN_URL)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        _run(asyncio.wait_for(probe(), 10))
    except Exception as exc:  # any failure to reach the server
        return f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {exc!r}"
    return None


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion even when called from inside a running event loop (a
    session fixture first requested by an async test): on a thread with a loop of its own."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def _admin(statement: str) -> None:
    engine = create_async_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"

    async def build() -> None:
        engine = make_engine(f"sqlite+aiosqlite:///{path}")
        await upgrade(engine)
        async with engine.connect() as conn:
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        await engine.dispose()

    _run(build())
    return path


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    problem = _postgres_problem()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but {problem}")
        pytest.skip(problem)
    name = f"crabglamp_tpl_{os.getpid()}"
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    _run(_admin(f'CREATE DATABASE "{name}"'))

    async def build() -> None:
        engine = make_engine(_with_database(POSTGRES_ADMIN_URL, name))
        await upgrade(engine)
        await engine.dispose()

    _run(build())
    yield name
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database, once per engine."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copyfile(template, path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    template_name: str = request.getfixturevalue("postgres_template")
    name = f"crabglamp_t_{uuid.uuid4().hex[:12]}"
    _run(_admin(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    yield _with_database(POSTGRES_ADMIN_URL, name)
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a PostgreSQL or browser test may not skip: it fails, saying why."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    guarded = item.get_closest_marker("postgres") or item.get_closest_marker("browser")
    if IN_CI and guarded and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"CI=true forbids skipping this test: {report.longrepr}"
