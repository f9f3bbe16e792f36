"""Structured logs: one JSON object per line on stderr, never a secret."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from crabglamp.periods import utcnow
from crabglamp.proxy.exchange import ROUTES, Exchange

# One logger for the proxy's request log, whichever module writes the line.
logger = logging.getLogger("crabglamp.proxy")


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": utcnow().isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        return json.dumps(line, default=str)


def log_to_stderr() -> None:
    if any(getattr(h, "_crabglamp", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLines())
    handler._crabglamp = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def emit(fields: dict[str, Any]) -> None:
    logger.info(fields.get("event", "proxy"), extra={"fields": fields})


def log_request(exchange: Exchange, status: int, elapsed: float) -> None:
    """The request's one log line: what it was, what it cost, how long each step took."""
    line: dict[str, Any] = {
        "event": "proxy_request",
        "request_id": exchange.request_id,
        "route": ROUTES[exchange.route],
        "status": status,
        "duration_ms": round(elapsed * 1000, 3),
    }
    if exchange.facts is not None:
        line["key_id"] = str(exchange.facts.key_id)
        line["account_id"] = str(exchange.facts.account_id)
    if exchange.model:
        line["model"] = exchange.model
        line["provider"] = exchange.provider
    if exchange.stream:
        line["stream"] = True
    if exchange.estimate_micros:
        line["estimate_micros"] = exchange.estimate_micros
    line.update(exchange.log)
    emit(line)
