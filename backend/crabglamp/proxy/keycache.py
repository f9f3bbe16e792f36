"""Which key a secret belongs to, looked up once per process and cached.

The cache holds only what never changes about a key (`KeyFacts`): its status, cap and secrets
are checked again by the admission statement itself, so a key revoked, suspended or rotated (or
its cap lowered) in another process is refused on its next request whatever this cache still
holds; the refused secret is then forgotten, and its next look-up says why.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine

from crabglamp.db import read_transaction
from crabglamp.keys import find_by_secret
from crabglamp.periods import utcnow
from crabglamp.proxy.exchange import KeyFacts
from crabglamp.proxy.refusals import Refusal, suspended_refusal

_KEY_CACHE_SIZE = 10_000


class KeyCache:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._facts: dict[str, KeyFacts] = {}
        self._lookups: dict[str, asyncio.Future[KeyFacts]] = {}

    async def facts(self, secret: str, digest: str) -> KeyFacts:
        facts = self._facts.get(digest)
        if facts is not None:
            return facts
        # Many requests of a key that is not cached yet share one look-up.
        pending = self._lookups.get(digest)
        if pending is None:
            pending = self._lookups[digest] = asyncio.ensure_future(self._look_up(secret, digest))
            pending.add_done_callback(lambda _: self._lookups.pop(digest, None))
        return await asyncio.shield(pending)

    async def _look_up(self, secret: str, digest: str) -> KeyFacts:
        async with read_transaction(self.engine) as conn:
            match = await find_by_secret(conn, secret)
        if match is None:
            raise Refusal(401, "invalid_api_key", "Incorrect API key provided.")
        if match.key.status == "suspended":
            raise suspended_refusal(match.key.suspended_reason, match.key.suspended_by_anomaly)
        if not match.key.active:
            raise Refusal(401, "key_revoked", "This virtual key has been revoked.")
        if not match.usable(utcnow()):
            raise Refusal(
                401,
                "invalid_api_key",
                "This virtual key was rotated and its previous secret's grace period has ended; "
                "use the new secret.",
            )
        key = match.key
        facts = KeyFacts(key.id, key.account_id, key.agent_id, key.provider)
        if len(self._facts) >= _KEY_CACHE_SIZE:
            self._facts.clear()
        self._facts[digest] = facts
        return facts

    def forget(self, digest: str) -> None:
        """The admission refused this secret: look it up afresh next time."""
        self._facts.pop(digest, None)
