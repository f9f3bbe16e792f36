"""A live server on seeded demo data, and real Chromium (Debian's) driven by Playwright.

The server and its database are made once per session; each test gets a fresh browser context
signed in through /dev/sign-in. Without the browser or a built dashboard these tests fail (they
never skip: the CI guard in tests/conftest.py would turn a skip into a failure anyway).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import CHROMIUM, CHROMIUM_ARGS, DIST, LAPTOP, LiveServer
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    if not (DIST / "index.html").exists():
        pytest.fail("the dashboard is not built: run ./just frontend (./just test does it)")
    workdir = tmp_path_factory.mktemp("live")
    port = _free_port()
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
        [sys.executable, "-m", "crabglamp.cli", "demo", "--no-serve"],
        cwd=workdir,
        env=env,
        check=True,
        timeout=900,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "crabglamp.server:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start: {(workdir / 'server.log').read_text()}")
            time.sleep(0.2)
        yield LiveServer(base_url, workdir)
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


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
def context(browser: Browser) -> Iterator[BrowserContext]:
    ctx = browser.new_context(viewport=LAPTOP, accept_downloads=True)
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
