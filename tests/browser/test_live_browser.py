"""Live updates in real Chromium: a request through the metering proxy shows on an open page
without a reload, and when the socket is down the page says so, polls, and reconnects.

Its own small world (one account, one key, the fake upstream), not the demo: what is measured
is the page following a write, which needs a proxy it can send through. No test asserts how
fast anything came (that is P5 in BENCHMARKS.md): each waits, generously, for what it expects.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from browser_support import DIST, LAPTOP
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from crabglamp.db import make_engine, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.keys import CreatedKey, create_key
from crabglamp.migrate import upgrade
from crabglamp.models import Account
from devsupport.servers import free_port, running

pytestmark = pytest.mark.browser

OWNER = "user_live_owner"
PATIENCE_MS = 60_000


@dataclass(frozen=True)
class World:
    base_url: str
    secret: str


async def _seed(db_url: str) -> str:
    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        account = uuid.uuid4()
        async with write_transaction(engine) as conn:
            await conn.execute(
                table_of(Account).insert().values(id=account, name="Live Co", owner_user_id=OWNER)  # type: ignore[attr-defined]
            )
            created = await create_key(conn, account, "live", "openai")
        assert isinstance(created, CreatedKey)
        return created.secret
    finally:
        await engine.dispose()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    if not (DIST / "index.html").exists():
        pytest.fail("the dashboard is not built: run ./just frontend (./just test does it)")
    work = tmp_path_factory.mktemp("live-page")
    db_url = f"sqlite+aiosqlite:///{work / 'live.db'}"
    # On a thread of its own: Playwright's sync API may already run an event loop here.
    with ThreadPoolExecutor(max_workers=1) as pool:
        secret = pool.submit(asyncio.run, _seed(db_url)).result()
    env = {**os.environ, "CRABGLAMP_BACKGROUND": "0"}
    env.pop("CRABGLAMP_PRODUCTION", None)
    env.pop("CLERK_JWT_KEY", None)
    fake_port, port = free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    config = work / "upstreams.toml"
    config.write_text(
        f'[providers.openai]\nurl = "http://127.0.0.1:{fake_port}/v1"\nkey = "sk-live"\n'
    )
    fake = [sys.executable, "-m", "crabglamp.cli", "fake-upstream", "--port", str(fake_port)]
    app = [sys.executable, "-m", "crabglamp.cli", "serve", "--port", str(port)]
    app_env = env | {
        "DATABASE_URL": db_url,
        "CRABGLAMP_UPSTREAM_CONFIG": str(config),
        "CRABGLAMP_DEV_ORIGINS": base_url,
    }
    with (
        running(fake, port=fake_port, log=work / "fake.log", env=env, ready="/v1/models"),
        running(app, port=port, log=work / "server.log", env=app_env, cwd=work),
    ):
        yield World(base_url, secret)


def _proxied_request(world: World) -> None:
    response = httpx.post(
        f"{world.base_url}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {world.secret}"},
        timeout=60,
    )
    assert response.status_code == 200, response.text


def _requests_shown(page: Page) -> int:
    note = page.locator("[data-stat=llm] .stat-note").inner_text()
    found = re.search(r"([\d,]+) requests?", note)
    assert found, note
    return int(found.group(1).replace(",", ""))


def _open(page: Page, world: World) -> None:
    page.goto(f"{world.base_url}/dev/sign-in?user={OWNER}&next=/dashboard/usage")
    page.wait_for_selector("#llm:is([data-state=ready], [data-state=empty])")
    # Marks this document: a reload would lose it.
    page.evaluate("window.__notReloaded = true")


def _shows_requests(page: Page, count: int) -> None:
    page.wait_for_function(
        """(count) => {
            const note = document.querySelector("[data-stat=llm] .stat-note");
            const found = note && /([\\d,]+) requests?/.exec(note.textContent || "");
            return found && Number(found[1].replace(/,/g, "")) >= count;
        }""",
        arg=count,
        timeout=PATIENCE_MS,
    )


def test_a_request_through_the_proxy_appears_on_the_open_page(
    browser: Browser, world: World
) -> None:
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        _open(page, world)
        expect(page.locator(".live-status")).to_have_attribute(
            "data-live", "live", timeout=PATIENCE_MS
        )
        before = _requests_shown(page)
        _proxied_request(world)
        _shows_requests(page, before + 1)
        assert page.evaluate("window.__notReloaded") is True
        # The key card counts it too (LLM news re-reads the cards).
        expect(page.locator("#keys")).to_contain_text("1 request", timeout=PATIENCE_MS)
    finally:
        context.close()
    assert not errors, errors


def test_a_change_made_before_the_subscription_listens_is_shown_once_it_does(
    browser: Browser, world: World
) -> None:
    """The page read while nobody listened (its socket was slow): a request committed after
    that read but before the listening began is caught up on, not left unseen."""
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    held: list[str | bytes] = []
    servers: list[WebSocketRoute] = []
    holding = {"on": True}

    def slow(route: WebSocketRoute) -> None:
        server = route.connect_to_server()
        servers.append(server)

        def from_page(message: str | bytes) -> None:
            if holding["on"]:
                held.append(message)
            else:
                server.send(message)

        route.on_message(from_page)

    page.route_web_socket(re.compile(r"/graphql$"), slow)
    # Another page listens meanwhile, so the server hears of the request while the slow page's
    # subscription is not yet listening (a listener that joins later is told only what follows).
    other = context.new_page()
    try:
        _open(other, world)
        expect(other.locator(".live-status")).to_have_attribute(
            "data-live", "live", timeout=PATIENCE_MS
        )
        # The page waits a moment for the subscription, then reads without it.
        _open(page, world)
        status = page.locator(".live-status")
        expect(status).to_have_attribute("data-live", "connecting")
        before = _requests_shown(page)
        _proxied_request(world)
        _shows_requests(other, before + 1)
        # The subscription gets through and listens: the page catches up on what it missed.
        # (Once live the page no longer polls, so only the catch-up can show the request.)
        holding["on"] = False
        for message in held:
            servers[-1].send(message)
        expect(status).to_have_attribute("data-live", "live", timeout=PATIENCE_MS)
        _shows_requests(page, before + 1)
        assert page.evaluate("window.__notReloaded") is True
    finally:
        context.close()
    assert not errors, errors


def test_without_its_socket_the_page_polls_says_so_and_reconnects(
    browser: Browser, world: World
) -> None:
    context = browser.new_context(viewport=LAPTOP)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    sockets: list[WebSocketRoute] = []
    allowed = {"connect": True}

    def through(route: WebSocketRoute) -> None:
        if not allowed["connect"]:
            route.close(code=1011, reason="down for the test")
            return
        route.connect_to_server()
        sockets.append(route)

    page.route_web_socket(re.compile(r"/graphql$"), through)
    try:
        page.clock.install()
        _open(page, world)
        status = page.locator(".live-status")
        expect(status).to_have_attribute("data-live", "live", timeout=PATIENCE_MS)

        # The socket goes down and stays down: the page says it polls, and it does.
        allowed["connect"] = False
        sockets[-1].close(code=1011, reason="down for the test")
        expect(status).to_have_attribute("data-live", "polling", timeout=PATIENCE_MS)
        expect(status).to_contain_text("refreshing every 30 s")
        before = _requests_shown(page)
        _proxied_request(world)
        page.clock.run_for("00:31")
        _shows_requests(page, before + 1)

        # Back up: the page reconnects on its own and is live again.
        allowed["connect"] = True
        page.clock.run_for("00:31")
        expect(status).to_have_attribute("data-live", "live", timeout=PATIENCE_MS)
        _proxied_request(world)
        _shows_requests(page, before + 2)
        assert page.evaluate("window.__notReloaded") is True
    finally:
        context.close()
    assert not errors, errors
