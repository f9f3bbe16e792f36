"""What a bundle holds: its lines as typed entries and event records, and why a line is refused.

One JSON object per line, of type `account`, `member`, `agent`, `plainVm`, `key`, `llm`, `voice`
or `compute` exactly as CONTRACTS.md §4 names their fields, and these extensions:

- `{"type":"price","provider","model","kind":"llm"|"embedding"|"voice","validFrom":"YYYY-MM-DD",
  "inputCentsPerMTok","outputCentsPerMTok","centsPerMChar"}` adds a catalog row, which prices
  events from its `validFrom` on (an llm price needs both token prices, an embedding price the
  input one, a voice price the character one). Every price of a bundle is in force for all of
  its events, wherever the line stands. Prices are platform-wide, so a tenant may not send them.
- `voice.keyId` (the key that paid for it) and `status` (`"ok"|"error"`) on `llm` and `voice`;
  export writes them only when they say something, so that a round trip loses nothing.
- on `llm`: the token categories `cachedInputTokens`, `cacheWrite5mTokens`, `cacheWrite1hTokens`,
  `audioInputTokens` (parts of `inputTokens`), `reasoningTokens`, `audioOutputTokens` (parts of
  `outputTokens`), `serviceTier` and `estimated`; on `price`: `cacheReadCentsPerMTok`,
  `cacheWrite5mCentsPerMTok`, `cacheWrite1hCentsPerMTok`. Written back only when they say
  something, like `status`.

Ids are UUIDs, except event ids (any non-empty string). Timestamps are ISO 8601 with a zone.
Money is a JSON number of cents, turned into integer micro-cents exactly. A line may refer only
to accounts, agents, plain VMs and keys of earlier lines or of the database.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Final

from crabglamp.ingest.records import ComputeRecord, LlmRecord, VoiceRecord
from crabglamp.prices import UnitPrice

# The entities other lines refer to by id, in the order the report lists them.
ENTITY_TYPES: Final = ("account", "agent", "plainVm", "key")


@dataclass(frozen=True, slots=True)
class Problem:
    """Why a line is refused; `field` is the bundle's (camelCase) name, None for the whole line."""

    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.line}: {self.field}: {self.reason}"
            if self.field
            else f"{self.line}: {self.reason}"
        )


@dataclass(frozen=True, slots=True)
class AccountEntry:
    id: uuid.UUID
    name: str
    clerk_org_id: str | None
    owner_user_id: str | None


@dataclass(frozen=True, slots=True)
class MemberEntry:
    account_id: uuid.UUID
    user_id: str
    role: str


@dataclass(frozen=True, slots=True)
class AgentEntry:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str


@dataclass(frozen=True, slots=True)
class PlainVmEntry:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    cents_per_hour_micros: int


@dataclass(frozen=True, slots=True)
class KeyEntry:
    id: uuid.UUID
    account_id: uuid.UUID
    name: str
    provider: str | None
    agent_id: uuid.UUID | None
    spend_cap_micros: int | None


Entity = AccountEntry | MemberEntry | AgentEntry | PlainVmEntry | KeyEntry | UnitPrice
Item = Entity | LlmRecord | VoiceRecord | ComputeRecord


@dataclass(frozen=True, slots=True)
class BundleLine:
    number: int
    item: Item


@dataclass(slots=True)
class ParsedBundle:
    lines: list[BundleLine] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    line_count: int = 0  # non-blank lines
    # (type, id) of entity lines refused while parsing, so lines that use them say why.
    refused_definitions: dict[tuple[str, uuid.UUID], int] = field(default_factory=dict)


def is_event(item: Item) -> bool:
    return isinstance(item, LlmRecord | VoiceRecord | ComputeRecord)


def entity_of(item: Item) -> Entity | None:
    return None if isinstance(item, LlmRecord | VoiceRecord | ComputeRecord) else item


def entity_key(item: Entity) -> tuple[str, object]:
    """(type, identity): a line with the same key again updates the entity."""
    if isinstance(item, AccountEntry):
        return ("account", item.id)
    if isinstance(item, MemberEntry):
        return ("member", (item.account_id, item.user_id))
    if isinstance(item, AgentEntry):
        return ("agent", item.id)
    if isinstance(item, PlainVmEntry):
        return ("plainVm", item.id)
    if isinstance(item, KeyEntry):
        return ("key", item.id)
    return ("price", (item.provider, item.model, item.valid_from))
