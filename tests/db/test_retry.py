"""with_retries: a transaction that lost a race runs again; any other failure is raised at once."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from crabglamp.db.retry import with_retries


def _locked() -> OperationalError:
    return OperationalError("UPDATE key_spend", {}, Exception("database is locked"))


async def test_a_retryable_error_runs_the_attempt_again() -> None:

    tries: list[int] = []

    async def attempt() -> str:
        tries.append(1)
        if len(tries) < 3:
            raise _locked()
        return "done"

    assert await with_retries(attempt, attempts=3, backoff=0) == "done"
    assert len(tries) == 3


async def test_the_last_attempts_error_and_any_other_error_are_raised() -> None:

    tries: list[int] = []

    async def locked() -> None:
        tries.append(1)
        raise _locked()

    with pytest.raises(OperationalError):
        await with_retries(locked, attempts=2, backoff=0)
    assert len(tries) == 2

    async def wrong() -> None:
        tries.append(1)
        raise ProgrammingError("SELECT", {}, Exception("syntax error"))

    with pytest.raises(DBAPIError):
        await with_retries(wrong, attempts=5, backoff=0)
    assert len(tries) == 3


async def test_retry_if_decides_which_errors_retry() -> None:

    tries: list[int] = []

    async def locked() -> None:
        tries.append(1)
        raise _locked()

    with pytest.raises(OperationalError):
        await with_retries(locked, attempts=5, backoff=0, retry_if=lambda _exc: False)
    assert len(tries) == 1
