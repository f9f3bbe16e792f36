"""Structured logs: one JSON object per line on stderr, never a secret.

A line is written once per proxied request, so its cost counts against the proxy's: through
`logging`'s usual call (which walks the stack to find its caller) and `json.dumps`, a line cost
~45 µs, about 4 % of a request's CPU; built as below, ~18 µs. It is still a `logging` record,
handed to the logger's handlers and filters as any other.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from crabglamp.proxy.exchange import ROUTES, Exchange

# One logger for the proxy's request log, whichever module writes the line.
logger = logging.getLogger("crabglamp.proxy")


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        try:
            # Datetimes as str() writes them, as any other value orjson does not know.
            return orjson.dumps(line, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME).decode()
        except orjson.JSONEncodeError:  # what only json can write: an int past 64 bits, say
            return json.dumps(line, default=str, separators=(",", ":"))


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
    """`fields` as one line. The record is made here rather than by `logger.info`, which would
    look up the calling frame's file and line for a line that never shows them."""
    if logger.isEnabledFor(logging.INFO):
        message = fields.get("event", "proxy")
        record = logger.makeRecord(
            logger.name, logging.INFO, "", 0, message, (), None, extra={"fields": fields}
        )
        logger.handle(record)


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
