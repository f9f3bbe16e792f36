"""The usage service: the three axes for a period and filters, from rollups; the request log.

Plain Python over SQLAlchemy Core: neither strawberry nor starlette is imported here, so the
REST endpoint, GraphQL and the CLI all read the same numbers.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Date,
    DateTime,
    Table,
    and_,
    cast,
    func,
    literal_column,
    null,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import (
    NONE_ID,
    Agent,
    ComputeDaily,
    ComputeInterval,
    LlmDaily,
    LlmDailyAgent,
    LlmDailyKey,
    LlmDailyModel,
    LlmEvent,
    PlainVm,
    VirtualKey,
    VoiceDaily,
)
from crabglamp.periods import Period, as_utc, day_start, utcnow

_T = TypeVar("_T")


def _t(model: Any) -> Table:
    table: Table = table_of(model)  # SQLModel classes expose their Core table
    return table


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


# Results: money in micro-cents, durations in microseconds


@dataclass(slots=True)
class ComputeAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    running_micros: int = 0
    paused_micros: int = 0
    running_us: int = 0
    paused_us: int = 0

    @property
    def total_micros(self) -> int:
        return self.running_micros + self.paused_micros


@dataclass(slots=True)
class PlainVmUsage:
    plain_vm_id: uuid.UUID
    plain_vm_name: str | None
    cost_micros: int = 0
    duration_us: int = 0


@dataclass(slots=True)
class ComputeDay:
    date: date
    agents: list[ComputeAgentUsage] = field(default_factory=list)
    plain_vms: list[PlainVmUsage] = field(default_factory=list)

    @property
    def agent_micros(self) -> int:
        return sum(a.total_micros for a in self.agents)

    @property
    def plain_vm_micros(self) -> int:
        return sum(v.cost_micros for v in self.plain_vms)

    @property
    def total_micros(self) -> int:
        return self.agent_micros + self.plain_vm_micros


@dataclass(slots=True)
class ComputeUsage:
    daily: list[ComputeDay]
    agents: list[ComputeAgentUsage]
    plain_vms: list[PlainVmUsage]

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)


@dataclass(slots=True)
class LlmModelUsage:
    model: str
    provider: str
    total_micros: int = 0
    request_count: int = 0
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(slots=True)
class LlmDay:
    date: date
    models: list[LlmModelUsage] = field(default_factory=list)

    @property
    def total_micros(self) -> int:
        return sum(m.total_micros for m in self.models)

    @property
    def request_count(self) -> int:
        return sum(m.request_count for m in self.models)


@dataclass(slots=True)
class LlmAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    total_micros: int = 0
    request_count: int = 0


@dataclass(slots=True)
class LlmKeyUsage:
    key_id: uuid.UUID
    key_name: str
    provider: str | None
    spend_cap_micros: int | None
    account_id: uuid.UUID
    status: str = "active"
    total_micros: int = 0
    request_count: int = 0


@dataclass(slots=True)
class LlmUsage:
    daily: list[LlmDay]
    agents: list[LlmAgentUsage]
    models: list[LlmModelUsage]
    keys: list[LlmKeyUsage]
    has_keys: bool

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)


@dataclass(slots=True)
class VoiceModelUsage:
    voice_model: str
    total_micros: int = 0
    characters: int = 0
    request_count: int = 0


@dataclass(slots=True)
class VoiceDay:
    date: date
    models: list[VoiceModelUsage] = field(default_factory=list)

    @property
    def total_micros(self) -> int:
        return sum(m.total_micros for m in self.models)

    @property
    def characters(self) -> int:
        return sum(m.characters for m in self.models)


@dataclass(slots=True)
class VoiceAgentUsage:
    agent_id: uuid.UUID | None
    agent_name: str | None
    total_micros: int = 0
    characters: int = 0


@dataclass(slots=True)
class VoiceUsage:
    daily: list[VoiceDay]
    agents: list[VoiceAgentUsage]
    models: list[VoiceModelUsage]

    @property
    def total_micros(self) -> int:
        return sum(d.total_micros for d in self.daily)

    @property
    def total_characters(self) -> int:
        return sum(d.characters for d in self.daily)

    @property
    def has_voice_usage(self) -> bool:
        return any(m.characters or m.total_micros or m.request_count for m in self.models)


@dataclass(slots=True)
class Usage:
    period: Period
    compute: ComputeUsage
    llm: LlmUsage
    voice: VoiceUsage


# Reading


def _scope(table: Any, query: UsageQuery) -> list[Any]:
    conditions = [table.c.day >= query.period.start, table.c.day <= query.period.end]
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    if query.agent_id is not None:
        conditions.append(table.c.agent_id == query.agent_id)
    return conditions


def _agent(agent_id: uuid.UUID) -> uuid.UUID | None:
    return None if agent_id == NONE_ID else agent_id


async def _names(
    conn: AsyncConnection, model: Any, ids: Iterable[uuid.UUID | None]
) -> dict[uuid.UUID, str]:
    wanted = sorted({i for i in ids if i is not None})
    table = _t(model)
    names: dict[uuid.UUID, str] = {}
    for chunk in chunks(wanted):
        rows = await conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(chunk)))
        names.update((row[0], row[1]) for row in rows)
    return names


def _identity(item: Any) -> tuple[str, str]:
    # The first two fields name an entry (model and provider, or an id and its name).
    first, second = type(item).__slots__[:2]
    return str(getattr(item, first)), str(getattr(item, second))


def _sorted_by_cost(items: Iterable[_T], cost: Callable[[_T], int]) -> list[_T]:
    # Biggest spender first; ties broken by identity so that every caller sees one order.
    return sorted(items, key=lambda item: (-cost(item), _identity(item)))


async def llm_usage(conn: AsyncConnection, query: UsageQuery) -> LlmUsage:
    if all(f is None for f in (query.agent_id, query.key_ids, query.provider, query.model)):
        # Every breakdown has a coarse rollup of its own: a month of a big account is a few
        # hundred rows per table instead of tens of thousands of llm_daily rows.
        days, models, agents, per_key = await _llm_from_coarse_rollups(conn, query)
    else:
        # An agent, key, provider or model filter narrows some breakdown in a way only the
        # full-grain rollup answers exactly (e.g. an agent's spend on one model).
        days, models, agents, per_key = await _llm_from_daily(conn, query)
    keys = await _keys(conn, query, per_key)
    names = await _names(conn, Agent, agents)
    for agent_entry in agents.values():
        agent_entry.agent_name = names.get(agent_entry.agent_id) if agent_entry.agent_id else None
    return LlmUsage(
        daily=[
            LlmDay(d, _sorted_by_cost(m.values(), lambda x: x.total_micros))
            for d, m in days.items()
        ],
        agents=_sorted_by_cost(agents.values(), lambda x: x.total_micros),
        models=_sorted_by_cost(models.values(), lambda x: x.total_micros),
        keys=keys,
        # Every listed key belongs to the accounts in scope: only an empty list needs a look.
        has_keys=bool(keys) or await _has_keys(conn, query),
    )


_LlmSums = tuple[
    dict[date, dict[tuple[str, str], LlmModelUsage]],
    dict[tuple[str, str], LlmModelUsage],
    dict[uuid.UUID | None, LlmAgentUsage],
    dict[uuid.UUID, list[int]],
]


def _in_period(table: Any, query: UsageQuery) -> list[Any]:
    conditions = [table.c.day >= query.period.start, table.c.day <= query.period.end]
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    return conditions


async def _llm_from_coarse_rollups(conn: AsyncConnection, query: UsageQuery) -> _LlmSums:
    by_model, by_agent, by_key = _t(LlmDailyModel), _t(LlmDailyAgent), _t(LlmDailyKey)
    days: dict[date, dict[tuple[str, str], LlmModelUsage]] = {d: {} for d in query.period.days}
    models: dict[tuple[str, str], LlmModelUsage] = {}
    # Several accounts may share a (day, provider, model), so the database sums over them.
    model_rows = await conn.execute(
        select(
            by_model.c.day,
            by_model.c.provider,
            by_model.c.model,
            func.sum(by_model.c.cost_micros),
            func.sum(by_model.c.request_count),
            func.sum(by_model.c.input_tokens),
            func.sum(by_model.c.output_tokens),
        )
        .where(*_in_period(by_model, query))
        .group_by(by_model.c.day, by_model.c.provider, by_model.c.model)
    )
    for day, provider, model, cost, count, tokens_in, tokens_out in model_rows:
        # PostgreSQL's SUM of a BIGINT is a NUMERIC (a Decimal here); int() keeps it exact.
        cost, count, tokens_in, tokens_out = int(cost), int(count), int(tokens_in), int(tokens_out)
        days[day][(provider, model)] = LlmModelUsage(
            model, provider, cost, count, tokens_in, tokens_out
        )
        entry = models.get((provider, model))
        if entry is None:
            models[(provider, model)] = LlmModelUsage(
                model, provider, cost, count, tokens_in, tokens_out
            )
        else:
            entry.total_micros += cost
            entry.request_count += count
            entry.input_tokens += tokens_in
            entry.output_tokens += tokens_out
    agents: dict[uuid.UUID | None, LlmAgentUsage] = {}
    agent_rows = await conn.execute(
        select(
            by_agent.c.agent_id,
            func.sum(by_agent.c.cost_micros),
            func.sum(by_agent.c.request_count),
        )
        .where(*_in_period(by_agent, query))
        .group_by(by_agent.c.agent_id)
    )
    for agent_id, cost, count in agent_rows:
        agent = _agent(agent_id)
        agents[agent] = LlmAgentUsage(agent, None, int(cost), int(count))
    key_rows = await conn.execute(
        select(
            by_key.c.key_id,
            func.sum(by_key.c.cost_micros),
            func.sum(by_key.c.request_count),
        )
        .where(*_in_period(by_key, query))
        .group_by(by_key.c.key_id)
    )
    per_key = {key_id: [int(cost), int(count)] for key_id, cost, count in key_rows}
    return days, models, agents, per_key


async def _llm_from_daily(conn: AsyncConnection, query: UsageQuery) -> _LlmSums:
    table = _t(LlmDaily)
    conditions = _scope(table, query)
    if query.key_ids is not None:
        conditions.append(table.c.key_id.in_(query.key_ids))
    if query.provider is not None:
        conditions.append(table.c.provider == query.provider)
    if query.model is not None:
        conditions.append(table.c.model == query.model)
    rows = await conn.execute(
        select(
            table.c.day,
            table.c.key_id,
            table.c.agent_id,
            table.c.provider,
            table.c.model,
            table.c.cost_micros,
            table.c.request_count,
            table.c.input_tokens,
            table.c.output_tokens,
        ).where(and_(*conditions))
    )
    days: dict[date, dict[tuple[str, str], LlmModelUsage]] = {d: {} for d in query.period.days}
    models: dict[tuple[str, str], LlmModelUsage] = {}
    agents: dict[uuid.UUID | None, LlmAgentUsage] = {}
    per_key: dict[uuid.UUID, list[int]] = {}
    for day, key_id, agent_id, provider, model, cost, count, tokens_in, tokens_out in rows:
        for bucket in (days[day], models):
            entry = bucket.get((provider, model))
            if entry is None:
                entry = bucket[(provider, model)] = LlmModelUsage(model, provider)
            entry.total_micros += cost
            entry.request_count += count
            entry.input_tokens += tokens_in
            entry.output_tokens += tokens_out
        agent = _agent(agent_id)
        agent_entry = agents.get(agent)
        if agent_entry is None:
            agent_entry = agents[agent] = LlmAgentUsage(agent, None)
        agent_entry.total_micros += cost
        agent_entry.request_count += count
        key_sum = per_key.setdefault(key_id, [0, 0])
        key_sum[0] += cost
        key_sum[1] += count
    return days, models, agents, per_key


async def _keys(
    conn: AsyncConnection, query: UsageQuery, per_key: dict[uuid.UUID, list[int]]
) -> list[LlmKeyUsage]:
    """Keys that spent under the filters; and, unless an agent or model filter narrows the
    spending, every other key in scope at zero, so a quiet key still has its card."""
    table = _t(VirtualKey)
    columns = (
        table.c.id,
        table.c.name,
        table.c.provider,
        table.c.spend_cap_micros,
        table.c.account_id,
        table.c.status,
    )
    found: dict[uuid.UUID, Any] = {}
    if query.agent_id is None and query.model is None:
        in_scope: list[ColumnElement[bool]] = []
        if query.account_ids is not None:
            in_scope.append(table.c.account_id.in_(query.account_ids))
        if query.key_ids is not None:
            in_scope.append(table.c.id.in_(query.key_ids))
        if query.provider is not None:
            in_scope.append(table.c.provider == query.provider)
        found.update((row[0], row) for row in await conn.execute(select(*columns).where(*in_scope)))
    # Keys that spent but are not among those: under an agent or model filter, or a key with
    # no provider of its own that spent on the filtered provider.
    for chunk in chunks(sorted(set(per_key) - found.keys())):
        rows = await conn.execute(select(*columns).where(table.c.id.in_(chunk)))
        found.update((row[0], row) for row in rows)
    keys = []
    for key_id, name, provider, cap, account_id, status in found.values():
        spent, count = per_key.get(key_id, (0, 0))
        keys.append(LlmKeyUsage(key_id, name, provider, cap, account_id, status, spent, count))
    return sorted(keys, key=lambda k: (-k.total_micros, k.key_name, str(k.key_id)))


async def _has_keys(conn: AsyncConnection, query: UsageQuery) -> bool:
    table = _t(VirtualKey)
    statement = select(table.c.id).limit(1)
    if query.account_ids is not None:
        statement = statement.where(table.c.account_id.in_(query.account_ids))
    return (await conn.execute(statement)).first() is not None


async def voice_usage(conn: AsyncConnection, query: UsageQuery) -> VoiceUsage:
    table = _t(VoiceDaily)
    conditions = _scope(table, query)
    if query.voice_model is not None:
        conditions.append(table.c.voice_model == query.voice_model)
    where = and_(*conditions)
    # The database sums (rollup rows are per agent, day and model; the breakdowns need far
    # fewer), which beats building and adding thousands of rows in Python.
    cost, characters = func.sum(table.c.cost_micros), func.sum(table.c.characters)
    by_day_model = await conn.execute(
        select(table.c.day, table.c.voice_model, cost, characters, func.sum(table.c.request_count))
        .where(where)
        .group_by(table.c.day, table.c.voice_model)
    )
    days: dict[date, dict[str, VoiceModelUsage]] = {d: {} for d in query.period.days}
    models: dict[str, VoiceModelUsage] = {}
    for day, voice_model, day_cost, day_characters, count in by_day_model:
        days[day][voice_model] = VoiceModelUsage(
            voice_model, int(day_cost), int(day_characters), int(count)
        )
        entry = models.get(voice_model)
        if entry is None:
            entry = models[voice_model] = VoiceModelUsage(voice_model)
        entry.total_micros += int(day_cost)
        entry.characters += int(day_characters)
        entry.request_count += int(count)
    by_agent = await conn.execute(
        select(table.c.agent_id, cost, characters).where(where).group_by(table.c.agent_id)
    )
    agents: dict[uuid.UUID | None, VoiceAgentUsage] = {}
    for agent_id, agent_cost, agent_characters in by_agent:
        agent = _agent(agent_id)
        agents[agent] = VoiceAgentUsage(agent, None, int(agent_cost), int(agent_characters))
    names = await _names(conn, Agent, agents)
    for agent_entry in agents.values():
        agent_entry.agent_name = names.get(agent_entry.agent_id) if agent_entry.agent_id else None
    return VoiceUsage(
        daily=[
            VoiceDay(d, _sorted_by_cost(m.values(), lambda x: x.total_micros))
            for d, m in days.items()
        ],
        agents=_sorted_by_cost(agents.values(), lambda x: x.total_micros),
        models=_sorted_by_cost(models.values(), lambda x: x.total_micros),
    )


async def compute_usage(
    conn: AsyncConnection, query: UsageQuery, now: datetime | None = None
) -> ComputeUsage:
    now = as_utc(now or utcnow())
    daily_table, intervals = _t(ComputeDaily), _t(ComputeInterval)
    rolled_up = select(
        daily_table.c.day,
        daily_table.c.agent_id,
        daily_table.c.plain_vm_id,
        daily_table.c.state,
        daily_table.c.cost_micros,
        daily_table.c.duration_us,
        cast(null(), DateTime(timezone=True)).label("start"),
        literal_column("0", BigInteger).label("rate"),
    ).where(*_scope(daily_table, query))
    # Open intervals are not rolled up (their end is unknown); they accrue until now. One
    # statement reads both, so an interval closed meanwhile is counted once, never 0 or 2 times.
    still_open = [
        intervals.c.end.is_(None),
        intervals.c.start < query.period.end_dt,
        intervals.c.start < now,
    ]
    if query.account_ids is not None:
        still_open.append(intervals.c.account_id.in_(query.account_ids))
    if query.agent_id is not None:
        still_open.append(intervals.c.agent_id == query.agent_id)
    accruing = select(
        cast(null(), Date),
        intervals.c.agent_id,
        intervals.c.plain_vm_id,
        intervals.c.state,
        literal_column("0", BigInteger),
        literal_column("0", BigInteger),
        intervals.c.start,
        intervals.c.cents_per_hour_micros,
    ).where(*still_open)

    days: dict[
        date, tuple[dict[uuid.UUID | None, ComputeAgentUsage], dict[uuid.UUID, PlainVmUsage]]
    ]
    days = {d: ({}, {}) for d in query.period.days}
    agents: dict[uuid.UUID | None, ComputeAgentUsage] = {}
    vms: dict[uuid.UUID, PlainVmUsage] = {}
    for day, agent_id, plain_vm_id, state, cost, duration, start, rate in await conn.execute(
        union_all(rolled_up, accruing)
    ):
        if day is not None:
            pieces = [(day, cost, duration)]
        else:
            pieces = [
                piece
                for piece in compute_cost_pieces(as_utc(start), now, rate)
                if query.period.start <= piece[0] <= query.period.end
            ]
        for piece_day, piece_cost, piece_us in pieces:
            day_agents, day_vms = days[piece_day]
            if plain_vm_id is not None and plain_vm_id != NONE_ID:
                for vm_bucket in (day_vms, vms):
                    vm = vm_bucket.get(plain_vm_id)
                    if vm is None:
                        vm = vm_bucket[plain_vm_id] = PlainVmUsage(plain_vm_id, None)
                    vm.cost_micros += piece_cost
                    vm.duration_us += piece_us
                continue
            agent = _agent(agent_id)
            for agent_bucket in (day_agents, agents):
                entry = agent_bucket.get(agent)
                if entry is None:
                    entry = agent_bucket[agent] = ComputeAgentUsage(agent, None)
                if state == "paused":
                    entry.paused_micros += piece_cost
                    entry.paused_us += piece_us
                else:
                    entry.running_micros += piece_cost
                    entry.running_us += piece_us

    agent_names = await _names(conn, Agent, agents)
    vm_names = await _names(conn, PlainVm, vms)
    for day_agents, day_vms in (*days.values(), (agents, vms)):
        for entry in day_agents.values():
            entry.agent_name = agent_names.get(entry.agent_id) if entry.agent_id else None
        for vm in day_vms.values():
            vm.plain_vm_name = vm_names.get(vm.plain_vm_id)
    return ComputeUsage(
        daily=[
            ComputeDay(
                d,
                _sorted_by_cost(day_agents.values(), lambda x: x.total_micros),
                _sorted_by_cost(day_vms.values(), lambda x: x.cost_micros),
            )
            for d, (day_agents, day_vms) in days.items()
        ],
        agents=_sorted_by_cost(agents.values(), lambda x: x.total_micros),
        plain_vms=_sorted_by_cost(vms.values(), lambda x: x.cost_micros),
    )


async def usage(conn: AsyncConnection, query: UsageQuery, now: datetime | None = None) -> Usage:
    return Usage(
        period=query.period,
        compute=await compute_usage(conn, query, now),
        llm=await llm_usage(conn, query),
        voice=await voice_usage(conn, query),
    )


# The per-request log: raw events, keyset-paginated


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    id: str
    ts: datetime
    key_id: uuid.UUID
    agent_id: uuid.UUID | None
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_micros: int
    status: str


@dataclass(frozen=True, slots=True)
class RequestPage:
    requests: list[LoggedRequest]
    end_cursor: str | None
    has_next_page: bool


@dataclass(frozen=True, slots=True)
class RequestLogQuery:
    day: date
    account_ids: tuple[uuid.UUID, ...] | None
    model: str | None = None
    key_ids: tuple[uuid.UUID, ...] | None = None
    provider: str | None = None
    agent_id: uuid.UUID | None = None


def encode_cursor(ts: datetime, event_id: str) -> str:
    return base64.urlsafe_b64encode(f"{as_utc(ts).isoformat()}|{event_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor.encode()).decode()
        moment, event_id = raw.split("|", 1)
        return as_utc(datetime.fromisoformat(moment)), event_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a cursor of this log: {cursor!r}") from exc


async def request_log(
    conn: AsyncConnection, query: RequestLogQuery, first: int = 50, after: str | None = None
) -> RequestPage:
    if not 1 <= first <= 500:
        raise ValueError("first must be between 1 and 500")
    table = _t(LlmEvent)
    start = day_start(query.day)
    end = day_start(date.fromordinal(query.day.toordinal() + 1))
    conditions = [table.c.ts >= start, table.c.ts < end]
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    if query.key_ids is not None:
        conditions.append(table.c.key_id.in_(query.key_ids))
    if query.model is not None:
        conditions.append(table.c.model == query.model)
    if query.provider is not None:
        conditions.append(table.c.provider == query.provider)
    if query.agent_id is not None:
        conditions.append(table.c.agent_id == query.agent_id)
    if after is not None:
        cursor_ts, cursor_id = decode_cursor(after)
        conditions.append(tuple_(table.c.ts, table.c.id) > tuple_(cursor_ts, cursor_id))
        # Redundant with the row comparison, but SQLite only starts its index range scan at a
        # plain bound: without it a deep page walks the day from midnight to the cursor.
        conditions.append(table.c.ts >= cursor_ts)
    rows = (
        await conn.execute(
            select(
                table.c.id,
                table.c.ts,
                table.c.key_id,
                table.c.agent_id,
                table.c.provider,
                table.c.model,
                table.c.input_tokens,
                table.c.output_tokens,
                table.c.cost_micros,
                table.c.status,
            )
            .where(and_(*conditions))
            .order_by(table.c.ts, table.c.id)
            .limit(first + 1)
        )
    ).all()
    items = [
        LoggedRequest(
            id=r.id,
            ts=as_utc(r.ts),
            key_id=r.key_id,
            agent_id=r.agent_id,
            provider=r.provider,
            model=r.model,
            input_tokens=r.input_tokens,
            output_tokens=r.output_tokens,
            cost_micros=r.cost_micros,
            status=r.status,
        )
        for r in rows[:first]
    ]
    has_next = len(rows) > first
    cursor = encode_cursor(items[-1].ts, items[-1].id) if items else None
    return RequestPage(items, cursor, has_next)


@dataclass(frozen=True, slots=True)
class RequestLogSummary:
    request_count: int
    total_micros: int


async def request_log_summary(conn: AsyncConnection, query: RequestLogQuery) -> RequestLogSummary:
    """The log's count and total, from the rollups (the same numbers as the chart)."""
    table = _t(LlmDaily)
    conditions = [table.c.day == query.day]
    if query.account_ids is not None:
        conditions.append(table.c.account_id.in_(query.account_ids))
    if query.key_ids is not None:
        conditions.append(table.c.key_id.in_(query.key_ids))
    if query.model is not None:
        conditions.append(table.c.model == query.model)
    if query.provider is not None:
        conditions.append(table.c.provider == query.provider)
    if query.agent_id is not None:
        conditions.append(table.c.agent_id == query.agent_id)
    row = (
        await conn.execute(
            select(
                func.coalesce(func.sum(table.c.request_count), 0),
                func.coalesce(func.sum(table.c.cost_micros), 0),
            ).where(and_(*conditions))
        )
    ).one()
    return RequestLogSummary(int(row[0]), int(row[1]))


def all_days(period: Period) -> Sequence[date]:
    return period.days
