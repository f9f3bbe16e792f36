"""Which database errors are worth retrying the transaction for."""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError


def retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, IntegrityError):
        return True  # a concurrent writer inserted the same event id first: look again
    text = str(exc.orig).lower()
    return isinstance(exc, OperationalError) or "deadlock" in text or "serializ" in text
