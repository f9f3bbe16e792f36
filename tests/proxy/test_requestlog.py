"""The proxy's log lines (requestlog.py): one JSON object per line, whatever the values."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from crabglamp.proxy.requestlog import emit, log_to_stderr, logger


@pytest.fixture
def lines() -> Iterator[list[str]]:
    log_to_stderr()
    collected: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            collected.append(self.format(record))

    handler = Collect()
    handler.setFormatter(logger.handlers[0].formatter)
    logger.addHandler(handler)
    try:
        yield collected
    finally:
        logger.removeHandler(handler)


def test_each_line_is_one_json_object_with_its_values_written_out(lines: list[str]) -> None:
    key = uuid.uuid4()
    when = datetime(2026, 12, 8, 3, 4, 5, tzinfo=UTC)
    emit({"event": "proxy_request", "key_id": key, "at": when, "cost": Decimal("1.5")})
    emit({"event": "reservations_swept", "count": 2**70})  # past what orjson writes
    assert all("\n" not in line for line in lines)
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "proxy_request" and first["level"] == "info"
    assert first["key_id"] == str(key)
    assert first["at"] == "2026-12-08 03:04:05+00:00"  # as str() writes it
    assert first["cost"] == "1.5"
    assert datetime.fromisoformat(first["ts"]).tzinfo is not None
    assert second["count"] == 2**70


def test_nothing_is_written_when_the_log_is_turned_down(lines: list[str]) -> None:
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        emit({"event": "proxy_request"})
    finally:
        logger.setLevel(level)
    assert lines == []
