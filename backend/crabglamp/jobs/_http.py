"""The HTTP client the jobs POST with, and how a failed POST is recorded (alert attempts and
billing lines keep the same wording, shown to people as `lastError`).

Only a status code or a generic reason is recorded, never what the receiver said: a receiver's
error body can hold anything (an internal service's secrets, when a URL pointed inside), and a
tenant's members read `lastError`. Closed and filtered ports are both "connection failed".
"""

from __future__ import annotations

from collections.abc import Callable

import httpx

from crabglamp.jobs.targets import TargetRefused

TIMED_OUT = "timed out"
CONNECTION_FAILED = "connection failed"


class OwnedClient:
    """An httpx client made on first use, unless one is given (tests pass theirs); closing
    closes only the one made here."""

    def __init__(
        self,
        timeout: float,
        client: httpx.AsyncClient | None = None,
        make: Callable[[float], httpx.AsyncClient] | None = None,
    ) -> None:
        self._timeout = timeout
        self._client = client
        self._own = client is None
        self._make = make

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._make is not None:
                self._client = self._make(self._timeout)
            else:
                # A webhook that redirects is not followed: the secret's receiver is the URL
                # given.
                self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False)
        return self._client

    async def close(self) -> None:
        if self._own and self._client is not None:
            await self._client.aclose()
            self._client = None


def transport_error(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return TIMED_OUT
    if isinstance(exc, TargetRefused):
        return f"refused: {exc}"  # our own rule, the same words as when it was configured
    return CONNECTION_FAILED


def refusal(response: httpx.Response) -> str | None:
    """None for a 2xx answer; otherwise its status code alone."""
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}"
