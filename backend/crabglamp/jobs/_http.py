"""The HTTP client the jobs POST with, and how a failed POST is recorded (alert attempts and
billing lines keep the same wording, shown to people as `lastError`)."""

from __future__ import annotations

import httpx


class OwnedClient:
    """An httpx client made on first use, unless one is given (tests pass theirs); closing
    closes only the one made here."""

    def __init__(self, timeout: float, client: httpx.AsyncClient | None = None) -> None:
        self._timeout = timeout
        self._client = client
        self._own = client is None

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            # A webhook that redirects is not followed: the secret's receiver is the URL given.
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._own and self._client is not None:
            await self._client.aclose()
            self._client = None


def transport_error(exc: httpx.HTTPError) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def refusal(response: httpx.Response) -> str | None:
    """None for a 2xx answer; otherwise what it said."""
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"
