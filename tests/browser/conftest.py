"""A live server on seeded demo data, and real Chromium (Debian's) driven by Playwright.

The server and its database are made once per session; each test gets a fresh browser context
signed in through /dev/sign-in. Without the browser or a built dashboard these tests fail (they
never skip: the CI guard in tests/conftest.py would turn a skip into a failure anyway).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DIST,
    LAPTOP,
    LiveServer,
    new_context,
)
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from clocks import FIXED_CLOCKS
from devsupport.servers import free_port, running, uvicorn_app

AT_CLOCK = Path(__file__).resolve().parents[1] / "at_clock.py"


# Every browser test runs on today's clock and again at each fixed clock, on a demo seeded at
# that moment (pytest runs a module's tests grouped by this parameter: one server at a time).
@pytest.fixture(scope="module", params=[None, *FIXED_CLOCKS], ids=["today", *FIXED_CLOCKS])
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    clock = FIXED_CLOCKS[request.param] if request.param else None
    started = time.time()

    def python() -> list[str]:
        # One timeline for the seeding and the server: each starts where the clock has got to.
        if clock is None:
            return [sys.executable]
        moment = datetime.fromtimestamp(clock.timestamp() + time.time() - started, UTC)
        return [sys.executable, str(AT_CLOCK), moment.isoformat()]

    if not (DIST / "index.html").exists():
        pytest.fail("the dashboard is not built: run ./just frontend (./just test does it)")
    workdir = tmp_path_factory.mktemp("live")
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        # The dev sign-in names this origin as the token's authorized party.
        "CRABGLAMP_DEV_ORIGINS": base_url,
    }
    env.pop("CRABGLAMP_PRODUCTION", None)
    env.pop("CLERK_JWT_KEY", None)
    subprocess.run(
        [*python(), "-m", "crabglamp.cli", "demo", "--no-serve"],
        cwd=workdir,
        env=env,
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    command = uvicorn_app(port, python=python())
    with running(command, port=port, log=workdir / "server.log", env=env, cwd=workdir):
        yield LiveServer(base_url, workdir, clock, started)


# Module scope, not session: Playwright's sync API keeps an event loop running on the main
# thread while it is open, which would break every asyncio test that runs after this module.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield launched
    launched.close()


@pytest.fixture
def context(browser: Browser, live_server: LiveServer) -> Iterator[BrowserContext]:
    ctx = new_context(browser, live_server, viewport=LAPTOP, accept_downloads=True)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    errors: list[str] = []
    p = context.new_page()
    p.on("pageerror", lambda error: errors.append(str(error)))
    yield p
    # An uncaught exception in the page is a bug even when the test's assertions passed.
    assert not errors, errors
