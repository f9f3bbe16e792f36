"""Refusals in OpenAI's error shape, {"error": {"message", "type", "code", "param"}}, and how
one reaches the client before or after the response has started."""

from __future__ import annotations

import json
from typing import Any

from crabglamp.money import micros_to_cents
from crabglamp.proxy._asgi import Send, send_whole
from crabglamp.proxy.exchange import Exchange
from crabglamp.proxy.reservation import CapExceeded


class Refusal(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        retry: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.kind = kind
        self.param = param
        self.retry = retry
        self.extra = extra or {}

    def body(self) -> bytes:
        error = {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}
        return json.dumps({"error": error | self.extra}).encode()


def bad(message: str, param: str | None = None, code: str = "invalid_request") -> Refusal:
    return Refusal(400, code, message, param=param)


def sse_error(message: str, code: str) -> bytes:
    error = {"message": message, "type": "upstream_error", "param": None, "code": code}
    return b"data: " + json.dumps({"error": error}).encode() + b"\n\n"


def cap_refusal(outcome: CapExceeded) -> Refusal:
    cap = micros_to_cents(outcome.cap_micros)
    spent = micros_to_cents(outcome.spent_micros)
    reserved = micros_to_cents(outcome.reserved_micros)
    estimate = micros_to_cents(outcome.estimate_micros)
    return Refusal(
        429,
        "spend_cap_exceeded",
        f"This virtual key's monthly spend cap of {_dollars(cap)} is reached: {_dollars(spent)} "
        f"accrued this month and {_dollars(reserved)} reserved by requests in flight, and this "
        f"request may cost up to {_dollars(estimate)}. Raise the cap or wait for next month.",
        kind="insufficient_quota",
        extra={
            "spend_cap_cents": cap,
            "accrued_cents": spent,
            "reserved_cents": reserved,
            "estimate_cents": estimate,
        },
    )


def suspended_refusal(reason: str | None, anomaly_id: str | None) -> Refusal:
    """A suspended key (keys.suspend_key): 403, saying why and, when its leak policy did it,
    which anomaly; an administrator resumes it (resumeVirtualKey)."""
    why = f" {reason.rstrip('.')}." if reason else ""
    return Refusal(
        403,
        "key_suspended",
        f"This virtual key is suspended.{why} An administrator of the account can resume it.",
        extra={"anomaly_id": anomaly_id} if anomaly_id else None,
    )


def _dollars(cents: float) -> str:
    whole, _, fraction = f"{cents / 100:,.8f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def upstream_refusal(exchange: Exchange, status: int, body: bytes) -> Refusal:
    message = f"The {exchange.provider} upstream answered {status}."
    code = "upstream_error"
    try:
        error = json.loads(body)["error"]
        message = f"{message} {error.get('message') or ''}".strip()
        code = error.get("code") or code
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    if status >= 500:
        return Refusal(502, "upstream_error", message, kind="upstream_error", retry=True)
    # The upstream found fault with the request (or rate-limited us): pass its verdict on.
    return Refusal(status, str(code), message, retry=status in (408, 409, 429))


async def send_refusal(
    send: Send, refusal: Refusal, request_id: str, responded: bool = False, sse: bool = True
) -> None:
    if responded:
        # Headers are out: in an event stream the refusal becomes its last event; audio just ends.
        body = sse_error(refusal.message, refusal.code) if sse else b""
        await send({"type": "http.response.body", "body": body, "more_body": False})
        return
    headers = [(b"x-should-retry", b"true" if refusal.retry else b"false")]
    if request_id:
        headers.append((b"x-crabglamp-request-id", request_id.encode()))
    await send_whole(send, refusal.status, refusal.body(), "application/json", request_id, headers)
