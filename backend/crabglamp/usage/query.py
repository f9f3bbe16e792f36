"""What the read side counts: a period, the accounts in scope and the filters."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from crabglamp.periods import Period


@dataclass(frozen=True, slots=True)
class UsageQuery:
    """What to count. `account_ids=None` is platform-wide (admins only; the caller checks)."""

    period: Period
    account_ids: tuple[uuid.UUID, ...] | None
    agent_id: uuid.UUID | None = None
    key_ids: tuple[uuid.UUID, ...] | None = None
    provider: str | None = None
    model: str | None = None
    voice_model: str | None = None
