"""The usage bundle of DESIGN 4.3: JSON Lines in (`crabglamp import`, `POST /api/events`) and out
(`crabglamp export`).

One JSON object per line, of type `account`, `member`, `agent`, `plainVm`, `key`, `llm`, `voice`
or `compute` exactly as DESIGN 4.3 names their fields, and these extensions:

- `{"type":"price","provider","model","kind":"llm"|"embedding"|"voice","validFrom":"YYYY-MM-DD",
  "inputCentsPerMTok","outputCentsPerMTok","centsPerMChar"}` adds a catalog row, which prices
  events from its `validFrom` on (an llm price needs both token prices, an embedding price the
  input one, a voice price the character one). Every price of a bundle is in force for all of
  its events, wherever the line stands. Prices are platform-wide, so a tenant may not send them.
- `voice.keyId` (the key that paid for it) and `status` (`"ok"|"error"`) on `llm` and `voice`;
  export writes them only when they say something, so that a round trip loses nothing.

Ids are UUIDs, except event ids (any non-empty string). Timestamps are ISO 8601 with a zone.
Money is a JSON number of cents, turned into integer micro-cents exactly. A line may refer only
to accounts, agents, plain VMs and keys of earlier lines or of the database.

The API, shared by the CLI and the REST endpoint:

    parsed = parse_bundle(lines)
    report = await apply_bundle(engine, ingestor, parsed, skip_invalid=False,
                                allowed_account_ids=None)

`parse_bundle(lines)` needs no database. `lines` are the lines of the body, str or bytes, with
or without their line ending, in order (split bytes on b"\\n": `str.splitlines` also splits on
U+2028, which JSON strings may hold). Blank lines are skipped but counted. It returns
`ParsedBundle(lines, problems)`: the well-formed lines and a `Problem(line, field, reason)` for
every defect (bad JSON, unknown type, missing/unknown/ill-typed field, negative number, bad
timestamp, end before start...). Line numbers are 1-based, as in the file.

`apply_bundle(...)` adds the checks that need the database — references, tenancy, a price for
events without `costCents`, events already stored with other content — and writes in ONE
transaction: entities are upserted (the same id again updates it; accounts, agents, plain VMs
and keys never move to another account), events go through `Ingestor.record_in` in chunks, so
rollups follow and re-importing changes nothing. When any line is bad, nothing is written,
unless `skip_invalid`, which writes the good lines and refuses the bad ones and every line that
refers to something a refused line defines. `allowed_account_ids` (None means platform-wide)
refuses each line that touches another account, and price lines. It returns an `ImportReport`:
`problems` (sorted by line), `committed`, entities `created`/`updated`/`unchanged` per type,
events `inserted`/`duplicates`/`closed_intervals`; `to_json()` gives its camelCase JSON form.

`export_bundle(conn, account_id, period)` yields the JSON objects of an account and its events
of a period; `dump_line(obj)` writes one as a line.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Final, TextIO, TypeVar

from sqlalchemy import RowMapping, Table, and_, or_, select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncMappingResult
from sqlmodel import SQLModel

from crabglamp.db import make_engine, read_transaction, write_transaction
from crabglamp.db.chunks import chunks
from crabglamp.db.dialect import insert_for
from crabglamp.ingest.ingestor import (
    ComputeRecord,
    IngestError,
    Ingestor,
    LlmRecord,
    Record,
    VoiceRecord,
    catalog_cost,
)
from crabglamp.money import MICROS_PER_CENT, cents_to_micros
from crabglamp.periods import Period, as_utc, parse_date, parse_month, utcnow
from crabglamp.prices import PriceBook, PriceNotFound, UnitPrice, load_price_book
from crabglamp.settings import Settings

_T = TypeVar("_T")

# Sanity bounds: far above any real value, far below where integer sums of micro-cents overflow.
MAX_COUNT: Final = 10**12
MAX_CENTS: Final = 10**9
_EVENT_CHUNK: Final = 5000  # events per Ingestor.record_in call
_ROW_CHUNK: Final = 500  # rows per upsert statement, well under both engines' parameter limits
_RETRIES: Final = 3
LARGE_BUNDLE: Final = 50_000  # events; above this a progress bar shows even without a terminal


# What a bundle holds


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


# Parsing: no database


class _Bad(ValueError):
    pass


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | Decimal):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, not {_json_kind(value)}")
    if not value.strip():
        raise _Bad("must not be empty")
    return value


def _uuid(value: object) -> uuid.UUID:
    if not isinstance(value, str):
        raise _Bad(f"must be a UUID string, not {_json_kind(value)}")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise _Bad(f"must be a UUID, got {value!r}") from None


def _count(value: object) -> int:
    if isinstance(value, Decimal):
        raise _Bad(f"must be a whole number, got {value}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f"must be a whole number, not {_json_kind(value)}")
    if value < 0:
        raise _Bad(f"must not be negative, got {value}")
    if value > MAX_COUNT:
        raise _Bad(f"is implausibly large ({value} > {MAX_COUNT})")
    return value


def _cents(value: object) -> int:
    """Cents as a JSON number, returned as integer micro-cents."""
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _Bad(f"must be a number of cents, not {_json_kind(value)}")
    if value < 0:
        raise _Bad(f"must not be negative, got {value}")
    if value > MAX_CENTS:
        raise _Bad(f"is implausibly large ({value} > {MAX_CENTS} cents)")
    return cents_to_micros(value)


def _moment(value: object) -> datetime:
    if not isinstance(value, str):
        raise _Bad(f"must be an ISO 8601 timestamp string, not {_json_kind(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise _Bad(f"is not an ISO 8601 timestamp: {value!r}") from None
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise _Bad(f"has no time zone: {value!r} (end it with Z or an offset such as +02:00)")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise _Bad(f"is out of range: {value!r}") from None


def _day(value: object) -> date:
    if not isinstance(value, str):
        raise _Bad(f"must be a YYYY-MM-DD string, not {_json_kind(value)}")
    try:
        return parse_date(value)
    except ValueError as exc:
        raise _Bad(str(exc)) from None


def _one_of(*options: str) -> Callable[[object], str]:
    def convert(value: object) -> str:
        if value not in options:
            raise _Bad(f"must be one of {', '.join(map(repr, options))}, got {value!r}")
        return str(value)

    return convert


_Converter = Callable[[object], object]
_REQUIRED, _OPTIONAL = True, False

# Per type: field → (conversion, required). Optional fields may be absent or null.
_SCHEMAS: Final[dict[str, dict[str, tuple[_Converter, bool]]]] = {
    "account": {
        "id": (_uuid, _REQUIRED),
        "name": (_text, _REQUIRED),
        "clerkOrgId": (_text, _OPTIONAL),
        "ownerUserId": (_text, _OPTIONAL),
    },
    "member": {
        "accountId": (_uuid, _REQUIRED),
        "userId": (_text, _REQUIRED),
        "role": (_one_of("admin", "member"), _REQUIRED),
    },
    "agent": {
        "id": (_uuid, _REQUIRED),
        "accountId": (_uuid, _REQUIRED),
        "name": (_text, _REQUIRED),
    },
    "plainVm": {
        "id": (_uuid, _REQUIRED),
        "accountId": (_uuid, _REQUIRED),
        "name": (_text, _REQUIRED),
        "centsPerHour": (_cents, _REQUIRED),
    },
    "key": {
        "id": (_uuid, _REQUIRED),
        "accountId": (_uuid, _REQUIRED),
        "name": (_text, _REQUIRED),
        "provider": (_text, _OPTIONAL),
        "agentId": (_uuid, _OPTIONAL),
        "spendCapCents": (_cents, _OPTIONAL),  # null: uncapped
    },
    "llm": {
        "id": (_text, _REQUIRED),
        "ts": (_moment, _REQUIRED),
        "keyId": (_uuid, _REQUIRED),
        "agentId": (_uuid, _OPTIONAL),
        "provider": (_text, _REQUIRED),
        "model": (_text, _REQUIRED),
        "inputTokens": (_count, _REQUIRED),
        "outputTokens": (_count, _REQUIRED),
        "costCents": (_cents, _OPTIONAL),
        "status": (_one_of("ok", "error"), _OPTIONAL),
    },
    "voice": {
        "id": (_text, _REQUIRED),
        "ts": (_moment, _REQUIRED),
        "accountId": (_uuid, _REQUIRED),
        "agentId": (_uuid, _OPTIONAL),
        "keyId": (_uuid, _OPTIONAL),
        "voiceModel": (_text, _REQUIRED),
        "characters": (_count, _REQUIRED),
        "costCents": (_cents, _OPTIONAL),
        "status": (_one_of("ok", "error"), _OPTIONAL),
    },
    "compute": {
        "id": (_text, _REQUIRED),
        "accountId": (_uuid, _REQUIRED),
        "agentId": (_uuid, _OPTIONAL),
        "plainVmId": (_uuid, _OPTIONAL),
        "state": (_one_of("running", "paused"), _REQUIRED),
        "start": (_moment, _REQUIRED),
        "end": (_moment, _OPTIONAL),  # null: still running, accrues until now
        "centsPerHour": (_cents, _REQUIRED),
    },
    "price": {
        "provider": (_text, _REQUIRED),
        "model": (_text, _REQUIRED),
        "kind": (_one_of("llm", "embedding", "voice"), _REQUIRED),
        "validFrom": (_day, _REQUIRED),
        "inputCentsPerMTok": (_cents, _OPTIONAL),
        "outputCentsPerMTok": (_cents, _OPTIONAL),
        "centsPerMChar": (_cents, _OPTIONAL),
    },
}
_ENTITY_TYPES: Final = ("account", "agent", "plainVm", "key")
_PRICE_FIELDS: Final = {
    "llm": ("inputCentsPerMTok", "outputCentsPerMTok"),
    "embedding": ("inputCentsPerMTok",),
    "voice": ("centsPerMChar",),
}


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKey(key)
        found[key] = value
    return found


def _no_constant(name: str) -> None:
    raise _Bad(f"{name} is not a number JSON allows")


def _cross_checks(kind: str, v: Mapping[str, Any]) -> list[tuple[str, str]]:
    problems = []
    if kind == "compute":
        start, end = v.get("start"), v.get("end")
        if isinstance(start, datetime) and isinstance(end, datetime) and end < start:
            problems.append(("end", f"is before start ({end.isoformat()} < {start.isoformat()})"))
        if v.get("agentId") is not None and v.get("plainVmId") is not None:
            # Usage would count it under the VM only: the agent's hours would vanish.
            problems.append(("plainVmId", "an interval is an agent's or a plain VM's, not both"))
    if kind == "price" and isinstance(v.get("kind"), str):
        needed = _PRICE_FIELDS[v["kind"]]
        for name in ("inputCentsPerMTok", "outputCentsPerMTok", "centsPerMChar"):
            if name in needed and v.get(name) is None:
                problems.append((name, f"missing (a {v['kind']} price needs it)"))
            elif name not in needed and v.get(name):
                problems.append((name, f"does not apply to a {v['kind']} price"))
    return problems


def _build(kind: str, v: Mapping[str, Any]) -> Item:
    if kind == "account":
        return AccountEntry(v["id"], v["name"], v["clerkOrgId"], v["ownerUserId"])
    if kind == "member":
        return MemberEntry(v["accountId"], v["userId"], v["role"])
    if kind == "agent":
        return AgentEntry(v["id"], v["accountId"], v["name"])
    if kind == "plainVm":
        return PlainVmEntry(v["id"], v["accountId"], v["name"], v["centsPerHour"])
    if kind == "key":
        return KeyEntry(
            v["id"], v["accountId"], v["name"], v["provider"], v["agentId"], v["spendCapCents"]
        )
    if kind == "llm":
        return LlmRecord(
            id=v["id"],
            ts=v["ts"],
            key_id=v["keyId"],
            provider=v["provider"],
            model=v["model"],
            input_tokens=v["inputTokens"],
            output_tokens=v["outputTokens"],
            cost_micros=v["costCents"],
            agent_id=v["agentId"],
            status=v["status"] or "ok",
        )
    if kind == "voice":
        return VoiceRecord(
            id=v["id"],
            ts=v["ts"],
            account_id=v["accountId"],
            voice_model=v["voiceModel"],
            characters=v["characters"],
            cost_micros=v["costCents"],
            agent_id=v["agentId"],
            key_id=v["keyId"],
            status=v["status"] or "ok",
        )
    if kind == "compute":
        return ComputeRecord(
            id=v["id"],
            account_id=v["accountId"],
            start=v["start"],
            end=v["end"],
            cents_per_hour_micros=v["centsPerHour"],
            state=v["state"],
            agent_id=v["agentId"],
            plain_vm_id=v["plainVmId"],
        )
    assert kind == "price", kind
    return UnitPrice(
        provider=v["provider"],
        model=v["model"],
        kind=v["kind"],
        valid_from=v["validFrom"],
        input_micros_per_mtok=v["inputCentsPerMTok"] or 0,
        output_micros_per_mtok=v["outputCentsPerMTok"] or 0,
        micros_per_mchar=v["centsPerMChar"] or 0,
    )


def _parse_line(number: int, text: str, parsed: ParsedBundle) -> None:
    def refuse(field_name: str | None, reason: str) -> None:
        parsed.problems.append(Problem(number, field_name, reason))

    try:
        obj = json.loads(
            text, parse_float=Decimal, parse_constant=_no_constant, object_pairs_hook=_unique_keys
        )
    except _DuplicateKey as exc:
        return refuse(exc.key, "given twice")
    except json.JSONDecodeError as exc:
        return refuse(None, f"not valid JSON: {exc.msg} (column {exc.colno})")
    except _Bad as exc:
        return refuse(None, f"not valid JSON: {exc}")
    except RecursionError:
        return refuse(None, "not valid JSON: nested too deeply")
    if not isinstance(obj, dict):
        return refuse(None, f"must be a JSON object, not {_json_kind(obj)}")
    if "type" not in obj:
        return refuse("type", "missing")
    kind = obj["type"]
    if not isinstance(kind, str) or kind not in _SCHEMAS:
        return refuse("type", f"unknown type {kind!r} (one of {', '.join(_SCHEMAS)})")
    schema = _SCHEMAS[kind]
    problems = [(name, "unknown field") for name in obj if name != "type" and name not in schema]
    values: dict[str, Any] = {}
    for name, (convert, required) in schema.items():
        raw = obj.get(name)
        if raw is None:
            if required:
                problems.append((name, "missing" if name not in obj else "must not be null"))
            else:
                values[name] = None
            continue
        try:
            values[name] = convert(raw)
        except _Bad as exc:
            problems.append((name, str(exc)))
    problems += _cross_checks(kind, values)
    if problems:
        for name, reason in problems:
            refuse(name, reason)
        if kind in _ENTITY_TYPES and isinstance(values.get("id"), uuid.UUID):
            parsed.refused_definitions.setdefault((kind, values["id"]), number)
        return None
    parsed.lines.append(BundleLine(number, _build(kind, values)))
    return None


def parse_bundle(lines: Iterable[str | bytes]) -> ParsedBundle:
    """Read and check every line of a bundle; see the module docstring."""
    parsed = ParsedBundle()
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, bytes):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                parsed.line_count += 1
                parsed.problems.append(
                    Problem(number, None, f"not UTF-8 text ({exc.reason} at byte {exc.start + 1})")
                )
                continue
        else:
            text = raw
        text = text.rstrip("\r\n")  # so that JSON errors point into the line, not past it
        if number == 1:
            text = text.removeprefix("\ufeff")
        if not text.strip():
            continue
        parsed.line_count += 1
        _parse_line(number, text, parsed)
    return parsed


# Applying: the checks that need the database, then one transaction


@dataclass(slots=True)
class ImportReport:
    problems: list[Problem] = field(default_factory=list)
    committed: bool = False
    line_count: int = 0
    created: Counter[str] = field(default_factory=Counter)
    updated: Counter[str] = field(default_factory=Counter)
    unchanged: Counter[str] = field(default_factory=Counter)
    inserted: int = 0  # events newly stored
    duplicates: int = 0  # events already stored, or repeated in the bundle
    closed_intervals: int = 0  # open compute intervals that got their end

    @property
    def refused_lines(self) -> int:
        return len({p.line for p in self.problems})

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        if not self.committed:
            return f"nothing written: {self.refused_lines} of {self.line_count} lines refused"
        parts = []
        for kind in (*_ENTITY_TYPES[:1], "member", *_ENTITY_TYPES[1:], "price"):
            counts = [
                f"{n:,} {label}"
                for n, label in (
                    (self.created[kind], "new"),
                    (self.updated[kind], "updated"),
                    (self.unchanged[kind], "unchanged"),
                )
                if n
            ]
            if counts:
                parts.append(f"{_PLURALS[kind]} {', '.join(counts)}")
        events = f"events {self.inserted:,} new, {self.duplicates:,} already stored"
        if self.closed_intervals:
            events += f", {self.closed_intervals:,} intervals closed"
        parts.append(events)
        refused = f"; {self.refused_lines:,} lines refused" if self.problems else ""
        return f"imported {self.line_count:,} lines: {'; '.join(parts)}{refused}"

    def to_json(self) -> dict[str, Any]:
        return {
            "committed": self.committed,
            "lines": self.line_count,
            "refusedLines": self.refused_lines,
            "created": dict(self.created),
            "updated": dict(self.updated),
            "unchanged": dict(self.unchanged),
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "closedIntervals": self.closed_intervals,
            "problems": [
                {"line": p.line, "field": p.field, "reason": p.reason} for p in self.problems
            ],
        }


_PLURALS: Final = {
    "account": "accounts",
    "member": "members",
    "agent": "agents",
    "plainVm": "plain VMs",
    "key": "keys",
    "price": "prices",
}
_NOUNS: Final = {"account": "account", "agent": "agent", "plainVm": "plain VM", "key": "key"}


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


@dataclass(slots=True)
class _State:
    """Accounts, members, agents, plain VMs, keys and prices by `_entity_key`: as stored, or as
    the bundle has made them so far."""

    entities: dict[tuple[str, object], Entity] = field(default_factory=dict)
    clerk_owner: dict[str, uuid.UUID] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(dict(self.entities), dict(self.clerk_owner))

    def owner(self, kind: str, entity_id: uuid.UUID) -> uuid.UUID | None:
        """The account of an account, agent, plain VM or key; None where it is unknown."""
        found = self.entities.get((kind, entity_id))
        if isinstance(found, AccountEntry):
            return found.id
        return found.account_id if isinstance(found, AgentEntry | PlainVmEntry | KeyEntry) else None

    def put(self, item: Entity) -> None:
        key = _entity_key(item)
        if isinstance(item, AccountEntry):
            old = self.entities.get(key)
            if isinstance(old, AccountEntry) and old.clerk_org_id:
                self.clerk_owner.pop(old.clerk_org_id, None)  # an organisation has one account
            if item.clerk_org_id:
                self.clerk_owner[item.clerk_org_id] = item.id
        self.entities[key] = item


def _entity_key(item: Entity) -> tuple[str, object]:
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


async def _select_in(
    conn: AsyncConnection, table: Table, column: str, values: Iterable[Any]
) -> list[RowMapping]:
    rows: list[RowMapping] = []
    for chunk in chunks(sorted(set(values), key=str)):
        result = await conn.execute(select(table).where(table.c[column].in_(chunk)))
        rows.extend(result.mappings().all())
    return rows


async def _load_state(conn: AsyncConnection, parsed: ParsedBundle) -> _State:
    """What the database holds of everything the bundle defines or refers to."""
    ids: dict[str, set[uuid.UUID]] = {kind: set() for kind in _ENTITY_TYPES}
    clerks: set[str] = set()
    member_accounts: set[uuid.UUID] = set()
    for line in parsed.lines:
        item = line.item
        if isinstance(item, AccountEntry):
            ids["account"].add(item.id)
            if item.clerk_org_id:
                clerks.add(item.clerk_org_id)
        elif isinstance(item, MemberEntry):
            ids["account"].add(item.account_id)
            member_accounts.add(item.account_id)
        elif isinstance(item, AgentEntry | PlainVmEntry | KeyEntry):
            ids["account"].add(item.account_id)
            ids[_entity_key(item)[0]].add(item.id)
            if isinstance(item, KeyEntry) and item.agent_id:
                ids["agent"].add(item.agent_id)
        elif isinstance(item, LlmRecord | VoiceRecord | ComputeRecord):
            if isinstance(item, LlmRecord):
                ids["key"].add(item.key_id)
            else:
                ids["account"].add(item.account_id)
            if isinstance(item, VoiceRecord) and item.key_id:
                ids["key"].add(item.key_id)
            if item.agent_id:
                ids["agent"].add(item.agent_id)
            if isinstance(item, ComputeRecord) and item.plain_vm_id:
                ids["plainVm"].add(item.plain_vm_id)

    state = _State()
    account_rows = await _select_in(conn, _table("account"), "id", ids["account"])
    account_rows += await _select_in(conn, _table("account"), "clerk_org_id", clerks)
    for row in account_rows:
        state.put(AccountEntry(row["id"], row["name"], row["clerk_org_id"], row["owner_user_id"]))
    for row in await _select_in(conn, _table("agent"), "id", ids["agent"]):
        state.put(AgentEntry(row["id"], row["account_id"], row["name"]))
    for row in await _select_in(conn, _table("plain_vm"), "id", ids["plainVm"]):
        state.put(
            PlainVmEntry(row["id"], row["account_id"], row["name"], row["cents_per_hour_micros"])
        )
    for row in await _select_in(conn, _table("virtual_key"), "id", ids["key"]):
        state.put(
            KeyEntry(
                row["id"],
                row["account_id"],
                row["name"],
                row["provider"],
                row["agent_id"],
                row["spend_cap_micros"],
            )
        )
    for row in await _select_in(conn, _table("member"), "account_id", member_accounts):
        state.put(MemberEntry(row["account_id"], row["user_id"], row["role"]))
    if any(isinstance(line.item, UnitPrice) for line in parsed.lines):
        for row in (await conn.execute(select(_table("price")))).mappings():
            state.put(
                UnitPrice(
                    row["provider"],
                    row["model"],
                    row["kind"],
                    row["valid_from"],
                    row["input_micros_per_mtok"],
                    row["output_micros_per_mtok"],
                    row["micros_per_mchar"],
                )
            )
    return state


class _Checker:
    """Walks the lines in order, as they would be applied, refusing what cannot be."""

    def __init__(
        self, parsed: ParsedBundle, stored: _State, allowed: set[uuid.UUID] | None
    ) -> None:
        self.now = stored.copy()
        self.allowed = allowed
        self.problems: list[Problem] = []
        self.refused = dict(parsed.refused_definitions)
        self.first_defined: dict[tuple[str, uuid.UUID], int] = dict(parsed.refused_definitions)
        for line in parsed.lines:
            spot = _definition(line.item)
            if spot is not None:
                self.first_defined[spot] = min(
                    line.number, self.first_defined.get(spot, line.number)
                )
        self.entities: list[BundleLine] = []
        self.events: list[BundleLine] = []

    def run(self, lines: Iterable[BundleLine]) -> None:
        for line in lines:
            reasons = self._reasons(line)
            entity = _entity(line.item)
            if reasons:
                self.problems.extend(Problem(line.number, f, r) for f, r in reasons)
                spot = _definition(line.item)
                if spot is not None:
                    self.refused.setdefault(spot, line.number)
            elif entity is None:
                self.events.append(line)
            else:
                self.now.put(entity)
                self.entities.append(line)

    def _missing(self, kind: str, entity_id: uuid.UUID, line: int) -> str:
        noun = _NOUNS[kind]
        refused_at = self.refused.get((kind, entity_id))
        if refused_at is not None and refused_at < line:
            return f"{noun} {entity_id} is defined on line {refused_at}, which is refused"
        defined_at = self.first_defined.get((kind, entity_id))
        if defined_at is not None and defined_at > line:
            return (
                f"{noun} {entity_id} is defined only later, on line {defined_at}; define it first"
            )
        return f"no {noun} {entity_id} in the bundle or the database"

    def _account(
        self, name: str, account_id: uuid.UUID, line: int, out: list[tuple[str, str]]
    ) -> bool:
        if self.now.owner("account", account_id) is None:
            out.append((name, self._missing("account", account_id, line)))
            return False
        if self.allowed is not None and account_id not in self.allowed:
            out.append((name, f"account {account_id} is not one this import may write"))
            return False
        return True

    def _belongs(
        self,
        name: str,
        kind: str,
        entity_id: uuid.UUID | None,
        account_id: uuid.UUID,
        line: int,
        out: list[tuple[str, str]],
    ) -> None:
        if entity_id is None:
            return
        owner = self.now.owner(kind, entity_id)
        if owner is None:
            out.append((name, self._missing(kind, entity_id, line)))
        elif owner != account_id:
            out.append((name, f"{_NOUNS[kind]} {entity_id} belongs to another account"))

    def _stays(
        self, kind: str, entity_id: uuid.UUID, account_id: uuid.UUID, out: list[tuple[str, str]]
    ) -> None:
        owner = self.now.owner(kind, entity_id)
        if owner is not None and owner != account_id:
            # Its events are rolled up under its account: moving it would split its history.
            out.append(
                (
                    "accountId",
                    f"{_NOUNS[kind]} {entity_id} belongs to another account; it cannot move",
                )
            )

    def _reasons(self, line: BundleLine) -> list[tuple[str, str]]:
        item, number = line.item, line.number
        out: list[tuple[str, str]] = []
        if isinstance(item, AccountEntry):
            if self.allowed is not None and item.id not in self.allowed:
                out.append(("id", f"account {item.id} is not one this import may write"))
            owner = self.now.clerk_owner.get(item.clerk_org_id or "")
            if item.clerk_org_id and owner not in (None, item.id):
                out.append(
                    ("clerkOrgId", f"organisation {item.clerk_org_id} has another account already")
                )
        elif isinstance(item, MemberEntry):
            self._account("accountId", item.account_id, number, out)
        elif isinstance(item, AgentEntry | PlainVmEntry | KeyEntry):
            if self._account("accountId", item.account_id, number, out):
                self._stays(_entity_key(item)[0], item.id, item.account_id, out)
                if isinstance(item, KeyEntry):
                    self._belongs("agentId", "agent", item.agent_id, item.account_id, number, out)
        elif isinstance(item, UnitPrice):
            if self.allowed is not None:
                out.append(
                    ("type", "the price catalog is platform-wide: only an admin may import prices")
                )
        elif isinstance(item, LlmRecord):
            account_id = self.now.owner("key", item.key_id)
            if account_id is None:
                out.append(("keyId", self._missing("key", item.key_id, number)))
            elif self.allowed is not None and account_id not in self.allowed:
                out.append(
                    ("keyId", f"key {item.key_id} is of an account this import may not write")
                )
            else:
                self._belongs("agentId", "agent", item.agent_id, account_id, number, out)
        else:
            if self._account("accountId", item.account_id, number, out):
                self._belongs("agentId", "agent", item.agent_id, item.account_id, number, out)
                if isinstance(item, VoiceRecord):
                    self._belongs("keyId", "key", item.key_id, item.account_id, number, out)
                else:
                    self._belongs(
                        "plainVmId", "plainVm", item.plain_vm_id, item.account_id, number, out
                    )
        return out


def _is_event(item: Item) -> bool:
    return isinstance(item, LlmRecord | VoiceRecord | ComputeRecord)


def _entity(item: Item) -> Entity | None:
    return None if isinstance(item, LlmRecord | VoiceRecord | ComputeRecord) else item


def _definition(item: Item) -> tuple[str, uuid.UUID] | None:
    """(type, id) of a line that defines an account, agent, plain VM or key."""
    entity = _entity(item)
    if entity is None:
        return None
    kind, key = _entity_key(entity)
    return (kind, key) if isinstance(key, uuid.UUID) else None


def _with_prices(book: PriceBook, added: Sequence[UnitPrice]) -> PriceBook:
    prices = {(p.provider, p.model, p.valid_from): p for p in book.prices}
    prices.update({(p.provider, p.model, p.valid_from): p for p in added})
    return PriceBook(prices.values())


def _priced(
    book: PriceBook, lines: Sequence[BundleLine], problems: list[Problem]
) -> list[BundleLine]:
    """Events without a cost get the catalog's price at their timestamp."""
    out = []
    for line in lines:
        item = line.item
        # Failed events stay as sent: the Ingestor records them free of charge.
        try:
            if (
                isinstance(item, LlmRecord | VoiceRecord)
                and item.cost_micros is None
                and item.status == "ok"
            ):
                cost = catalog_cost(book, item)
                line = BundleLine(line.number, replace(item, cost_micros=cost))
        except PriceNotFound as exc:
            problems.append(Problem(line.number, "costCents", str(exc)))
            continue
        out.append(line)
    return out


def _deduplicated(
    lines: Sequence[BundleLine], problems: list[Problem], report: ImportReport
) -> list[BundleLine]:
    """One line per event id: repeats count as duplicates, conflicting repeats are refused."""
    kept: dict[str, BundleLine] = {}
    for line in lines:
        item = line.item
        assert isinstance(item, LlmRecord | VoiceRecord | ComputeRecord)
        first = kept.get(item.id)
        if first is None:
            kept[item.id] = line
            continue
        earlier = first.item
        if type(earlier) is not type(item):
            problems.append(
                Problem(
                    line.number,
                    "id",
                    f"event id {item.id!r} is used on line {first.number} already",
                )
            )
        elif earlier == item:
            report.duplicates += 1
        elif (
            isinstance(item, ComputeRecord)
            and isinstance(earlier, ComputeRecord)
            and replace(item, end=None) == replace(earlier, end=None)
            and (item.end is None or earlier.end is None)
        ):
            # The one allowed change: an open interval sent again with its end. Keep the end.
            report.duplicates += 1
            if earlier.end is None:
                kept[item.id] = BundleLine(first.number, item)
        else:
            problems.append(
                Problem(
                    line.number,
                    "id",
                    f"event id {item.id!r} is on line {first.number} already, with other content",
                )
            )
    return list(kept.values())


_COLUMN_NAMES: Final = {
    "ts": "ts",
    "account_id": "accountId",
    "key_id": "keyId",
    "agent_id": "agentId",
    "plain_vm_id": "plainVmId",
    "provider": "provider",
    "model": "model",
    "input_tokens": "inputTokens",
    "output_tokens": "outputTokens",
    "cost_micros": "costCents",
    "voice_model": "voiceModel",
    "characters": "characters",
    "status": "status",
    "state": "state",
    "start": "start",
    "end": "end",
    "cents_per_hour_micros": "centsPerHour",
}


def _in_bundle_terms(event_line: int, reason: str) -> Problem:
    """The Ingestor's word on an event, in the bundle's names."""
    prefix = "event id already recorded with different "
    if reason.startswith(prefix):
        names = [_COLUMN_NAMES.get(n, n) for n in reason[len(prefix) :].split(", ")]
        return Problem(event_line, "id", f"is already stored with different {', '.join(names)}")
    return Problem(event_line, None, reason)


Progress = Callable[[int, int], None]


async def _record(
    conn: AsyncConnection,
    ingestor: Ingestor,
    events: Sequence[BundleLine],
    report: ImportReport,
    problems: list[Problem],
    progress: Progress | None,
) -> None:
    done = 0
    for chunk in chunks(events, _EVENT_CHUNK):
        pending = list(chunk)
        while pending:
            by_id = {_event_id(line): line for line in pending}
            try:
                result = await ingestor.record_in(conn, [_record_of(line) for line in pending])
            except IngestError as exc:
                # record_in wrote nothing of this chunk: drop what it refused and go again.
                refused = {p.event_id for p in exc.problems if p.event_id in by_id}
                if not refused:
                    raise
                for p in exc.problems:
                    if p.event_id in by_id:
                        problems.append(_in_bundle_terms(by_id[p.event_id].number, p.reason))
                pending = [line for line in pending if _event_id(line) not in refused]
                continue
            report.inserted += result.inserted
            report.duplicates += result.duplicates
            report.closed_intervals += result.closed_intervals
            break
        done += len(chunk)
        if progress is not None:
            progress(done, len(events))


def _record_of(line: BundleLine) -> Record:
    assert isinstance(line.item, LlmRecord | VoiceRecord | ComputeRecord)
    return line.item


def _event_id(line: BundleLine) -> str:
    return _record_of(line).id


def _dialect_insert(conn: AsyncConnection, table: Table) -> Any:
    return insert_for(conn, table)


async def _upsert(
    conn: AsyncConnection,
    table: Table,
    rows: list[dict[str, Any]],
    conflict: tuple[str, ...],
    update: tuple[str, ...],
) -> None:
    if not rows:
        return
    statement = _dialect_insert(conn, table)
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[c] for c in conflict],
        set_={c: statement.excluded[c] for c in update},
    )
    for chunk in chunks(rows, _ROW_CHUNK):
        await conn.execute(statement, list(chunk))


async def _write_entities(conn: AsyncConnection, changed: Sequence[Entity]) -> None:
    """Parents before children (PostgreSQL checks foreign keys), each in bundle order."""
    now = utcnow()

    def of(kind: type[_T]) -> list[_T]:
        return [item for item in changed if isinstance(item, kind)]

    await _upsert(
        conn,
        _table("account"),
        [
            {
                "id": a.id,
                "name": a.name,
                "clerk_org_id": a.clerk_org_id,
                "owner_user_id": a.owner_user_id,
            }
            for a in of(AccountEntry)
        ],
        ("id",),
        ("name", "clerk_org_id", "owner_user_id"),
    )
    await _upsert(
        conn,
        _table("agent"),
        [{"id": a.id, "account_id": a.account_id, "name": a.name} for a in of(AgentEntry)],
        ("id",),
        ("name",),
    )
    await _upsert(
        conn,
        _table("plain_vm"),
        [
            {
                "id": v.id,
                "account_id": v.account_id,
                "name": v.name,
                "cents_per_hour_micros": v.cents_per_hour_micros,
            }
            for v in of(PlainVmEntry)
        ],
        ("id",),
        ("name", "cents_per_hour_micros"),
    )
    await _upsert(
        conn,
        _table("virtual_key"),
        [
            {
                "id": k.id,
                "account_id": k.account_id,
                "name": k.name,
                "provider": k.provider,
                "agent_id": k.agent_id,
                "spend_cap_micros": k.spend_cap_micros,
                "status": "active",
                "secret_hash": None,
                "secret_prefix": None,
                "created_at": now,
            }
            for k in of(KeyEntry)
        ],
        ("id",),
        # Status and secret belong to the key's life here (rotation, revocation), not the bundle.
        ("name", "provider", "agent_id", "spend_cap_micros"),
    )
    await _upsert(
        conn,
        _table("member"),
        [
            {"account_id": m.account_id, "user_id": m.user_id, "role": m.role}
            for m in of(MemberEntry)
        ],
        ("account_id", "user_id"),
        ("role",),
    )
    await _upsert(
        conn,
        _table("price"),
        [
            {
                "provider": p.provider,
                "model": p.model,
                "kind": p.kind,
                "valid_from": p.valid_from,
                "input_micros_per_mtok": p.input_micros_per_mtok,
                "output_micros_per_mtok": p.output_micros_per_mtok,
                "micros_per_mchar": p.micros_per_mchar,
            }
            for p in of(UnitPrice)
        ],
        ("provider", "model", "valid_from"),
        ("kind", "input_micros_per_mtok", "output_micros_per_mtok", "micros_per_mchar"),
    )


class _RollBack(Exception):
    def __init__(self, report: ImportReport) -> None:
        super().__init__("bundle refused")
        self.report = report


def _transient(exc: DBAPIError) -> bool:
    text = str(exc.orig).lower()
    if isinstance(exc, IntegrityError):
        # A concurrent writer stored one of our event ids first: the next try sees a duplicate.
        return "_event" in text or "compute_interval" in text
    return isinstance(exc, OperationalError) or "deadlock" in text or "serializ" in text


async def apply_bundle(
    engine: AsyncEngine,
    ingestor: Ingestor,
    parsed: ParsedBundle,
    *,
    skip_invalid: bool,
    allowed_account_ids: set[uuid.UUID] | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Check what needs the database and write the bundle in one transaction (module docstring).

    `progress(done, total)` hears of events written so far.
    """
    for attempt in range(_RETRIES):
        try:
            return await _apply_once(
                engine, ingestor, parsed, skip_invalid, allowed_account_ids, progress
            )
        except DBAPIError as exc:
            if attempt == _RETRIES - 1 or not _transient(exc):
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


async def _apply_once(
    engine: AsyncEngine,
    ingestor: Ingestor,
    parsed: ParsedBundle,
    skip_invalid: bool,
    allowed: set[uuid.UUID] | None,
    progress: Progress | None,
) -> ImportReport:
    report = ImportReport(line_count=parsed.line_count)
    problems = list(parsed.problems)
    try:
        async with write_transaction(engine) as conn:
            stored = await _load_state(conn, parsed)
            checker = _Checker(parsed, stored, allowed)
            checker.run(parsed.lines)
            problems += checker.problems
            new_prices = [
                line.item for line in checker.entities if isinstance(line.item, UnitPrice)
            ]
            book = _with_prices(ingestor.prices, new_prices) if new_prices else ingestor.prices
            events = _priced(book, checker.events, problems)
            events = _deduplicated(events, problems, report)

            final: dict[tuple[str, object], Entity] = {}
            for line in checker.entities:
                entity = _entity(line.item)
                assert entity is not None
                final[_entity_key(entity)] = entity
            changed = []
            for spot, item in final.items():
                kind, before = spot[0], stored.entities.get(spot)
                if before is None:
                    report.created[kind] += 1
                elif before != item:
                    report.updated[kind] += 1
                else:
                    report.unchanged[kind] += 1
                    continue
                changed.append(item)
            await _write_entities(conn, changed)
            # Checking against stored events is record_in's: run it even when lines are already
            # refused, so that every bad line is reported at once.
            await _record(conn, ingestor, events, report, problems, progress)
            report.problems = sorted(problems, key=lambda p: (p.line, p.field or ""))
            if report.problems and not skip_invalid:
                raise _RollBack(report)
    except _RollBack as rollback:
        return rollback.report
    report.committed = True
    if new_prices:
        ingestor.prices = book
    return report


# Export


def _cents_of(micros: int) -> Decimal:
    """Micro-cents as an exact decimal number of cents, written without exponent."""
    whole, rest = divmod(abs(micros), MICROS_PER_CENT)
    text = f"{whole}.{rest:06d}".rstrip("0").rstrip(".")
    return Decimal(("-" if micros < 0 else "") + text)


def _iso(moment: datetime) -> str:
    return as_utc(moment).isoformat().replace("+00:00", "Z")


def _json_value(value: object) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, uuid.UUID):
        return f'"{value}"'
    if isinstance(value, datetime):
        return f'"{_iso(value)}"'
    if isinstance(value, date):
        return f'"{value.isoformat()}"'
    return json.dumps(value)


def dump_line(obj: Mapping[str, object]) -> str:
    """One bundle line: money as exact decimals (json.dumps would go through float)."""
    return "{" + ",".join(f"{json.dumps(k)}:{_json_value(v)}" for k, v in obj.items()) + "}"


async def export_bundle(
    conn: AsyncConnection, account_id: uuid.UUID, period: Period
) -> AsyncIterator[dict[str, object]]:
    """The account, its members, agents, plain VMs and keys, then its llm, voice and compute
    events of the period (intervals that overlap it, whole). Raises LookupError for an unknown
    account."""
    accounts = _table("account")
    account = (
        (await conn.execute(select(accounts).where(accounts.c.id == account_id))).mappings().first()
    )
    if account is None:
        raise LookupError(f"no account {account_id}")
    yield {
        "type": "account",
        "id": account["id"],
        "name": account["name"],
        "clerkOrgId": account["clerk_org_id"],
        "ownerUserId": account["owner_user_id"],
    }
    members = _table("member")
    for row in await _rows(conn, members, members.c.account_id == account_id, members.c.user_id):
        yield {
            "type": "member",
            "accountId": account_id,
            "userId": row["user_id"],
            "role": row["role"],
        }
    agents = _table("agent")
    for row in await _rows(conn, agents, agents.c.account_id == account_id, agents.c.id):
        yield {"type": "agent", "id": row["id"], "accountId": account_id, "name": row["name"]}
    vms = _table("plain_vm")
    for row in await _rows(conn, vms, vms.c.account_id == account_id, vms.c.id):
        yield {
            "type": "plainVm",
            "id": row["id"],
            "accountId": account_id,
            "name": row["name"],
            "centsPerHour": _cents_of(row["cents_per_hour_micros"]),
        }
    keys = _table("virtual_key")
    for row in await _rows(conn, keys, keys.c.account_id == account_id, keys.c.id):
        cap = row["spend_cap_micros"]
        yield {
            "type": "key",
            "id": row["id"],
            "accountId": account_id,
            "name": row["name"],
            "provider": row["provider"],
            "agentId": row["agent_id"],
            "spendCapCents": None if cap is None else _cents_of(cap),
        }

    llm = _table("llm_event")
    in_period = and_(
        llm.c.account_id == account_id, llm.c.ts >= period.start_dt, llm.c.ts < period.end_dt
    )
    async for row in await _stream(conn, llm, in_period, llm.c.ts, llm.c.id):
        line: dict[str, object] = {
            "type": "llm",
            "id": row["id"],
            "ts": row["ts"],
            "keyId": row["key_id"],
            "agentId": row["agent_id"],
            "provider": row["provider"],
            "model": row["model"],
            "inputTokens": row["input_tokens"],
            "outputTokens": row["output_tokens"],
            "costCents": _cents_of(row["cost_micros"]),
        }
        if row["status"] != "ok":
            line["status"] = row["status"]
        yield line
    voice = _table("voice_event")
    in_period = and_(
        voice.c.account_id == account_id, voice.c.ts >= period.start_dt, voice.c.ts < period.end_dt
    )
    async for row in await _stream(conn, voice, in_period, voice.c.ts, voice.c.id):
        line = {
            "type": "voice",
            "id": row["id"],
            "ts": row["ts"],
            "accountId": account_id,
            "agentId": row["agent_id"],
            "voiceModel": row["voice_model"],
            "characters": row["characters"],
            "costCents": _cents_of(row["cost_micros"]),
        }
        if row["key_id"] is not None:
            line["keyId"] = row["key_id"]
        if row["status"] != "ok":
            line["status"] = row["status"]
        yield line
    compute = _table("compute_interval")
    overlapping = and_(
        compute.c.account_id == account_id,
        compute.c.start < period.end_dt,
        # An interval that ends exactly at the month's first midnight has nothing in it, unless
        # it has no length at all and starts inside.
        or_(
            compute.c.end.is_(None),
            compute.c.end > period.start_dt,
            compute.c.start >= period.start_dt,
        ),
    )
    async for row in await _stream(conn, compute, overlapping, compute.c.start, compute.c.id):
        yield {
            "type": "compute",
            "id": row["id"],
            "accountId": account_id,
            "agentId": row["agent_id"],
            "plainVmId": row["plain_vm_id"],
            "state": row["state"],
            "start": row["start"],
            "end": row["end"],
            "centsPerHour": _cents_of(row["cents_per_hour_micros"]),
        }


async def _rows(conn: AsyncConnection, table: Table, where: Any, order: Any) -> list[RowMapping]:
    return list((await conn.execute(select(table).where(where).order_by(order))).mappings())


async def _stream(
    conn: AsyncConnection, table: Table, where: Any, *order: Any
) -> AsyncMappingResult:
    # Streamed: a month of a large account does not fit in memory as one result.
    result = await conn.stream(select(table).where(where).order_by(*order))
    return result.mappings()


# The commands


class ProgressBar:
    """A bar on stderr: redrawn in place on a terminal, one line per tenth otherwise (logs)."""

    def __init__(self, label: str, stream: TextIO, *, interactive: bool) -> None:
        self.label = label
        self.stream = stream
        self.interactive = interactive
        self._shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 if total <= 0 else min(100, done * 100 // total)
        step = percent if self.interactive else percent // 10 * 10
        if step == self._shown:
            return
        self._shown = step
        filled = percent * 30 // 100
        bar = f"{self.label} [{'#' * filled}{'.' * (30 - filled)}] {percent:3d}% {done:,}/{total:,}"
        if self.interactive:
            self.stream.write("\r" + bar)
            if done >= total:
                self.stream.write("\n")
        else:
            self.stream.write(bar + "\n")
        self.stream.flush()


def _reading(stream: IO[bytes], size: int, bar: ProgressBar | None) -> Iterator[bytes]:
    read = 0
    for line in stream:
        read += len(line)
        if bar is not None:
            bar(read, size)
        yield line
    if bar is not None:
        bar(size, size)


def _parse_file(file: str, interactive: bool) -> ParsedBundle:
    if file == "-":
        return parse_bundle(sys.stdin.buffer)
    with Path(file).open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        large = size >= (1 << 20 if interactive else 64 << 20)
        bar = ProgressBar("reading  ", sys.stderr, interactive=interactive) if large else None
        return parse_bundle(_reading(stream, size, bar))


async def import_command(settings: Settings, file: str, *, skip_invalid: bool) -> int:
    """`crabglamp import FILE`: 0 when every line was written, 1 when lines were refused, 2 when
    the file cannot be read."""
    from crabglamp.migrate import upgrade

    interactive = sys.stderr.isatty()
    name = "<stdin>" if file == "-" else file
    try:
        parsed = _parse_file(file, interactive)
    except OSError as exc:
        print(f"crabglamp import: cannot read {file}: {exc.strerror}", file=sys.stderr)
        return 2

    engine = make_engine(settings.database_url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            prices = await load_price_book(conn)
        events = sum(1 for line in parsed.lines if _is_event(line.item))
        show = events > 0 and (interactive or events >= LARGE_BUNDLE)
        bar = ProgressBar("importing", sys.stderr, interactive=interactive) if show else None
        report = await apply_bundle(
            engine, Ingestor(engine, prices), parsed, skip_invalid=skip_invalid, progress=bar
        )
    finally:
        await engine.dispose()

    for problem in report.problems:
        print(f"{name}:{problem}", file=sys.stderr)
    if report.committed:
        print(f"{name}: {report.summary()}")
    else:
        others = report.line_count - report.refused_lines
        print(
            f"{name}: {report.summary()} (fix them, or use --skip-invalid to write the other "
            f"{others:,})",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


async def export_command(settings: Settings, account: str, month: str, output: str) -> int:
    """`crabglamp export --account ID --month YYYY-MM [-o FILE]`: 0 when written, 2 for bad
    arguments or an unknown account."""
    try:
        account_id = uuid.UUID(account)
    except ValueError:
        print(f"crabglamp export: --account must be a UUID, got {account!r}", file=sys.stderr)
        return 2
    try:
        period = parse_month(month)
    except ValueError as exc:
        print(f"crabglamp export: --month: {exc}", file=sys.stderr)
        return 2

    counts: Counter[str] = Counter()
    engine = make_engine(settings.database_url)
    target: TextIO
    temporary: Path | None = None
    if output == "-":
        target = sys.stdout
    else:
        # Written beside the target and renamed at the end: never a half-written bundle.
        destination = Path(output)
        handle, temp_name = tempfile.mkstemp(prefix=f".{destination.name}.", dir=destination.parent)
        temporary = Path(temp_name)
        target = os.fdopen(handle, "w", encoding="utf-8")
    try:
        async with read_transaction(engine) as conn:
            async for obj in export_bundle(conn, account_id, period):
                counts[str(obj["type"])] += 1
                target.write(dump_line(obj) + "\n")
        target.flush()
        if temporary is not None:
            target.close()
            temporary.replace(output)
            temporary = None
    except LookupError as exc:
        print(f"crabglamp export: {exc}", file=sys.stderr)
        return 2
    finally:
        if temporary is not None:
            target.close()
            temporary.unlink(missing_ok=True)
        await engine.dispose()

    entities = ", ".join(
        f"{counts[kind]:,} {_PLURALS[kind]}" for kind in ("member", "agent", "plainVm", "key")
    )
    events = ", ".join(f"{counts[kind]:,} {kind}" for kind in ("llm", "voice", "compute"))
    where = "standard output" if output == "-" else output
    print(
        f"exported account {account_id}, {month}: {entities}; events {events} to {where}",
        file=sys.stderr,
    )
    return 0
