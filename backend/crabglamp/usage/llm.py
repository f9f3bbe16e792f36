"""The LLM axis: spend, requests and tokens per day, model, agent and key, from the rollups."""

from __future__ import annotations

import uuid
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.models import (
    Agent,
    LlmDaily,
    LlmDailyAgent,
    LlmDailyKey,
    LlmDailyModel,
    LlmMonthlyAgent,
    LlmMonthlyKey,
    VirtualKey,
)
from crabglamp.usage._axis import (
    Ids,
    Shape,
    in_accounts,
    names_of,
    parameters,
    per_key,
    raw_id,
    scope,
    shape_of,
    sorted_by_cost,
    spanning,
)
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import (
    LLM_MODEL_SUMS,
    LlmAgentUsage,
    LlmDay,
    LlmKeyUsage,
    LlmModelUsage,
    LlmUsage,
)


async def llm_usage(conn: AsyncConnection, query: UsageQuery) -> LlmUsage:
    values = parameters(query)
    if all(f is None for f in (query.agent_id, query.key_ids, query.provider, query.model)):
        # Every breakdown has a coarse rollup of its own: a month of a big account is a few
        # hundred rows per table instead of tens of thousands of llm_daily rows.
        days, models, agents, per_key = await _llm_from_coarse_rollups(conn, query, values)
    else:
        # An agent, key, provider or model filter narrows some breakdown in a way only the
        # full-grain rollup answers exactly (e.g. an agent's spend on one model).
        days, models, agents, per_key = await _llm_from_daily(conn, query, values)
    keys = await _keys(conn, query, values, per_key)
    names = await names_of(conn, Agent, agents)
    for agent_entry in agents.values():
        agent_entry.agent_name = names.get(agent_entry.agent_id) if agent_entry.agent_id else None
    return LlmUsage(
        daily=[
            LlmDay(d, sorted_by_cost(m.values(), lambda x: x.total_micros)) for d, m in days.items()
        ],
        agents=sorted_by_cost(agents.values(), lambda x: x.total_micros),
        models=sorted_by_cost(models.values(), lambda x: x.total_micros),
        keys=keys,
        # Every listed key belongs to the accounts in scope: only an empty list needs a look.
        has_keys=bool(keys) or await _has_keys(conn, query, values),
    )


_LlmSums = tuple[
    dict[date, dict[tuple[str, str], LlmModelUsage]],
    dict[tuple[str, str], LlmModelUsage],
    dict[uuid.UUID | None, LlmAgentUsage],
    dict[uuid.UUID, list[int]],
]


async def _llm_from_coarse_rollups(
    conn: AsyncConnection, query: UsageQuery, values: dict[str, Any]
) -> _LlmSums:
    shape = shape_of(query)
    days: dict[date, dict[tuple[str, str], LlmModelUsage]] = {d: {} for d in query.period.days}
    model_rows = await conn.execute(_day_model_rows(shape), values)
    model_days: dict[tuple[str, str], list[list[int]]] = {}
    for day, provider, model, *sums in model_rows.all():
        days[day][(provider, model)] = LlmModelUsage(model, provider, *sums)
        rows_of = model_days.get((provider, model))
        if rows_of is None:
            rows_of = model_days[(provider, model)] = []
        rows_of.append(sums)
    # Each model's period: its days' sums added column by column, in C (a month is a few
    # hundred rows of eleven sums).
    models = {
        (provider, model): LlmModelUsage(model, provider, *map(sum, zip(*rows_of, strict=True)))
        for (provider, model), rows_of in model_days.items()
    }
    # Agents and keys over the period: whole months from the monthly rollups, a few rows each.
    agents: dict[uuid.UUID | None, LlmAgentUsage] = {}
    ids = Ids()
    agent_rows = await conn.execute(
        spanning(
            table_of(LlmMonthlyAgent),
            table_of(LlmDailyAgent),
            shape,
            ("agent_id",),
            ("cost_micros", "request_count"),
        ),
        values,
    )
    for raw_agent, cost, count in agent_rows:
        agent = ids(raw_agent)
        agents[agent] = LlmAgentUsage(agent, None, cost, count)
    key_rows = await conn.execute(
        spanning(
            table_of(LlmMonthlyKey),
            table_of(LlmDailyKey),
            shape,
            ("key_id",),
            ("cost_micros", "request_count"),
        ),
        values,
    )
    per_key: dict[uuid.UUID, list[int]] = {}
    for raw_key, cost, count in key_rows:
        key_id = ids(raw_key)
        assert key_id is not None  # a key's id is never NONE_ID
        per_key[key_id] = [cost, count]
    return days, models, agents, per_key


@cache
def _day_model_rows(shape: Shape) -> Select[Any]:
    return per_key(table_of(LlmDailyModel), shape, ("day", "provider", "model"), LLM_MODEL_SUMS)


async def _llm_from_daily(
    conn: AsyncConnection, query: UsageQuery, values: dict[str, Any]
) -> _LlmSums:
    table = table_of(LlmDaily)
    conditions = scope(table, shape_of(query))
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
            raw_id(table.c.agent_id),
            table.c.provider,
            table.c.model,
            *(table.c[name] for name in LLM_MODEL_SUMS),
        ).where(and_(*conditions)),
        values,
    )
    days: dict[date, dict[tuple[str, str], LlmModelUsage]] = {d: {} for d in query.period.days}
    models: dict[tuple[str, str], LlmModelUsage] = {}
    agents: dict[uuid.UUID | None, LlmAgentUsage] = {}
    per_key: dict[uuid.UUID, list[int]] = {}
    ids = Ids()
    for day, key_id, raw_agent, provider, model, *sums in rows:
        cost, count = sums[0], sums[1]
        for bucket in (days[day], models):
            entry = bucket.get((provider, model))
            if entry is None:
                entry = bucket[(provider, model)] = LlmModelUsage(model, provider)
            entry.add(sums)
        agent = ids(raw_agent)
        agent_entry = agents.get(agent)
        if agent_entry is None:
            agent_entry = agents[agent] = LlmAgentUsage(agent, None)
        agent_entry.total_micros += cost
        agent_entry.request_count += count
        key_sum = per_key.setdefault(key_id, [0, 0])
        key_sum[0] += cost
        key_sum[1] += count
    return days, models, agents, per_key


@cache
def _key_rows(accounts: bool, keys: bool, provider: bool, by_id: bool) -> Select[Any]:
    """The keys in scope (filtered by what is True), or `by_id` those of a list of ids."""
    table = table_of(VirtualKey)
    columns = (
        table.c.id,
        table.c.name,
        table.c.provider,
        table.c.spend_cap_micros,
        raw_id(table.c.account_id),  # the same few accounts on every row: parsed once each
        table.c.status,
    )
    conditions: list[ColumnElement[bool]] = in_accounts(table, accounts)
    if keys:
        conditions.append(table.c.id.in_(bindparam("keys", expanding=True)))
    if provider:
        conditions.append(table.c.provider == bindparam("provider"))
    if by_id:
        conditions.append(table.c.id.in_(bindparam("ids", expanding=True)))
    return select(*columns).where(*conditions)


async def _keys(
    conn: AsyncConnection,
    query: UsageQuery,
    values: dict[str, Any],
    per_key: dict[uuid.UUID, list[int]],
) -> list[LlmKeyUsage]:
    """Keys that spent under the filters; and, unless an agent or model filter narrows the
    spending, every other key in scope at zero, so a quiet key still has its card."""
    found: dict[uuid.UUID, Any] = {}
    if query.agent_id is None and query.model is None:
        in_scope = _key_rows(
            query.account_ids is not None,
            query.key_ids is not None,
            query.provider is not None,
            by_id=False,
        )
        wanted = {**values, "keys": list(query.key_ids or ()), "provider": query.provider}
        found.update((row[0], row) for row in await conn.execute(in_scope, wanted))
    # Keys that spent but are not among those: under an agent or model filter, or a key with
    # no provider of its own that spent on the filtered provider.
    by_id = _key_rows(False, False, False, by_id=True)
    for chunk in chunks(sorted(set(per_key) - found.keys())):
        found.update((row[0], row) for row in await conn.execute(by_id, {"ids": chunk}))
    keys = []
    accounts = Ids()
    for key_id, name, provider, cap, raw_account, status in found.values():
        spent, count = per_key.get(key_id, (0, 0))
        account_id = accounts(raw_account)
        assert account_id is not None  # an account's id is never NONE_ID
        keys.append(LlmKeyUsage(key_id, name, provider, cap, account_id, status, spent, count))
    return sorted(keys, key=lambda k: (-k.total_micros, k.key_name, str(k.key_id)))


@cache
def _any_key(accounts: bool) -> Select[Any]:
    table = table_of(VirtualKey)
    return select(table.c.id).where(*in_accounts(table, accounts)).limit(1)


async def _has_keys(conn: AsyncConnection, query: UsageQuery, values: dict[str, Any]) -> bool:
    statement = _any_key(query.account_ids is not None)
    return (await conn.execute(statement, values)).first() is not None
