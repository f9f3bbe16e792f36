"""Shared by the browser tests: the live server's handle, signing in, screenshots."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Browser, BrowserContext, Page

REPO = Path(__file__).resolve().parents[2]
DIST = REPO / "frontend" / "dist"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("CRABGLAMP_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
LAPTOP = {"width": 1366, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    workdir: Path
    # The server's wall clock: None is the real one; else it read `clock` at `started` (real
    # time.time()) and runs on from there.
    clock: datetime | None = None
    started: float = 0.0

    def now(self) -> datetime:
        """What the server's (and the browser's) clock reads now."""
        if self.clock is None:
            return datetime.now(UTC)
        return datetime.fromtimestamp(self.clock.timestamp() + time.time() - self.started, UTC)

    def today(self) -> date:
        return self.now().date()

    def graphql(self, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            f"{self.base_url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        body = response.json()
        assert response.status_code == 200 and "errors" not in body, body
        return body["data"]

    def rest(self, token: str, path: str, **params: str) -> Any:
        response = httpx.get(
            f"{self.base_url}{path}",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        return response.json()


def new_context(browser: Browser, server: LiveServer, **options: Any) -> BrowserContext:
    """A browser context whose clock reads what the server's does (the page's "this month")."""
    context = browser.new_context(**options)
    context.clock.install(time=server.now())
    return context


def sign_in(
    page: Page,
    server: LiveServer,
    user: str = "user_demo_alice",
    next_path: str = "/dashboard/usage",
) -> str:
    """Sign in through the dev sign-in; returns the session token the browser now holds."""
    page.goto(f"{server.base_url}/dev/sign-in?user={user}&next={quote(next_path, safe='/')}")
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies["__session"]


def screenshot(page: Page, name: str, full_page: bool = True) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
