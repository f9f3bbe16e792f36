"""Retrying a transaction that lost a race with a concurrent writer: which errors, and the loop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

_T = TypeVar("_T")


def retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same event id first: look again
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) or "deadlock" in text or "serializ" in text


async def with_retries(
    attempt: Callable[[], Awaitable[_T]],
    *,
    attempts: int = 8,
    backoff: float = 0.005,
    retry_if: Callable[[DBAPIError], bool] = retryable,
) -> _T:
    """Run `attempt` (one whole transaction) until it succeeds, at most `attempts` times.

    A database error that `retry_if` accepts (a deadlock, a serialisation failure, a duplicate a
    concurrent writer inserted first) runs it again after `backoff` seconds times the attempts so
    far; any other error, or the last attempt's, is raised. `attempt` must start its own
    transaction, so that each try sees what the writer it raced has committed:

        async def once() -> IngestResult:
            async with write_transaction(engine) as conn:
                return await ingestor.record_in(conn, records)

        result = await with_retries(once)
        report = await with_retries(apply_once, attempts=3, backoff=0.05, retry_if=_transient)
    """
    for tried in range(1, attempts + 1):
        try:
            return await attempt()
        except DBAPIError as exc:
            if tried == attempts or not retry_if(exc):
                raise
        await asyncio.sleep(backoff * tried)
    raise ValueError(f"attempts must be at least 1, not {attempts}")
