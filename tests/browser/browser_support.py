"""Shared by the browser tests: the live server's handle, signing in, screenshots."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from playwright.sync_api import Page

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
