"""The signature on everything the jobs POST (alert webhooks, billing reports), so that one
verifier serves both: `X-CrabGlamp-Signature: t=<unix seconds>,v1=<hex>`, the HMAC-SHA256 of
"<t>.<body>" under the receiver's secret.

Not the Standard Webhooks scheme (and its library): receivers already verify this one, as the
guide at /docs/anomalies-and-alerts shows, and a new scheme would break every one of them."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta

from crabglamp.periods import utcnow

SIGNATURE_HEADER = "X-CrabGlamp-Signature"
# The same on every retry of one event (or one batch of reports): receivers drop duplicates.
IDEMPOTENCY_HEADER = "Idempotency-Key"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify_signature(
    secret: str,
    header: str | None,
    body: bytes,
    now: datetime | None = None,
    tolerance: timedelta = timedelta(minutes=5),
) -> bool:
    """What a receiver runs: the signature matches the body and its timestamp is recent."""
    if not header:
        return False
    items = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(items.get("t", ""))
    except ValueError:
        return False
    moment = (now or utcnow()).timestamp()
    if abs(moment - timestamp) > tolerance.total_seconds():
        return False  # a replay of an old delivery
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, items.get("v1", ""))
