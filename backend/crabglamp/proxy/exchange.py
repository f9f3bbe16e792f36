"""One proxied request as it goes through the proxy, and the facts of the key that sent it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crabglamp.periods import utcnow
from crabglamp.proxy.reservation import Reservation
from crabglamp.proxy.upstreams import Upstream

# The proxy's routes by name; an exchange's `route` is one of the names.
ROUTES = {
    "chat": "/v1/chat/completions",
    "embeddings": "/v1/embeddings",
    "speech": "/v1/audio/speech",
}


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What never changes about a key; its status, cap and secrets are checked at admission."""

    key_id: uuid.UUID
    account_id: uuid.UUID
    agent_id: uuid.UUID | None
    provider: str | None


@dataclass(slots=True)
class Exchange:
    """One proxied request, from its body to its log line."""

    route: str
    request_id: str = field(default_factory=lambda: f"req_{uuid.uuid4().hex}")
    started: float = field(default_factory=time.perf_counter)
    now: datetime = field(default_factory=utcnow)
    body: bytes = b""
    payload: dict[str, Any] = field(default_factory=dict)
    facts: KeyFacts | None = None
    secret_hash: str = ""
    model: str = ""
    provider: str = ""
    upstream: Upstream | None = None
    estimate_micros: int = 0
    # The service tier the request asked for (None: the provider's default), as priced.
    requested_tier: str | None = None
    reservation: Reservation | None = None
    stream: bool = False
    # Set once the response has started: from then on a failure can only end the stream.
    responded: bool = False
    # Set once the reservation is settled or released: nothing is left to give back.
    settled: bool = False
    log: dict[str, Any] = field(default_factory=dict)

    def remaining(self, limit: float) -> float:
        return max(0.001, limit - (time.perf_counter() - self.started))

    def key(self) -> KeyFacts:
        """The key's facts, once admission has looked them up."""
        assert self.facts is not None
        return self.facts
