"""The voice axis: spend and characters per day, voice model and agent, from the voice rollups
(voice_daily_model and voice_monthly_agent; voice_daily under an agent or voice model filter)."""

from __future__ import annotations

import uuid
from datetime import date
from functools import cache
from typing import Any

from sqlalchemy import Select, and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Agent, VoiceDaily, VoiceDailyModel, VoiceMonthlyAgent
from crabglamp.usage._axis import (
    Ids,
    Shape,
    names_of,
    parameters,
    per_key,
    raw_id,
    scope,
    shape_of,
    sorted_by_cost,
    spanning,
    total,
)
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import VoiceAgentUsage, VoiceDay, VoiceModelUsage, VoiceUsage

_SUMS = ("cost_micros", "characters", "request_count")


@cache
def _day_model_rows(shape: Shape) -> Select[Any]:
    return per_key(table_of(VoiceDailyModel), shape, ("day", "voice_model"), _SUMS)


async def voice_usage(conn: AsyncConnection, query: UsageQuery) -> VoiceUsage:
    daily_table = table_of(VoiceDaily)
    shape, values = shape_of(query), parameters(query)
    if query.agent_id is None and query.voice_model is None:
        # The chart from its own rollup (day x model), the agents of whole months from theirs:
        # a month is a few hundred rows instead of one per day, agent and model.
        by_day_model = _day_model_rows(shape)
        by_agent = spanning(table_of(VoiceMonthlyAgent), daily_table, shape, ("agent_id",), _SUMS)
    else:
        # An agent or model filter: only voice_daily has both.
        conditions = scope(daily_table, shape)
        if query.voice_model is not None:
            conditions.append(daily_table.c.voice_model == query.voice_model)
        where = and_(*conditions)
        sums = [total(daily_table.c[name]) for name in _SUMS]
        # The database sums, which beats building and adding thousands of rows in Python.
        by_day_model = (
            select(daily_table.c.day, daily_table.c.voice_model, *sums)
            .where(where)
            .group_by(daily_table.c.day, daily_table.c.voice_model)
        )
        by_agent = (
            select(raw_id(daily_table.c.agent_id), *sums)
            .where(where)
            .group_by(daily_table.c.agent_id)
        )
    days: dict[date, dict[str, VoiceModelUsage]] = {d: {} for d in query.period.days}
    models: dict[str, VoiceModelUsage] = {}
    for day, voice_model, day_cost, day_characters, count in await conn.execute(
        by_day_model, values
    ):
        days[day][voice_model] = VoiceModelUsage(voice_model, day_cost, day_characters, count)
        entry = models.get(voice_model)
        if entry is None:
            entry = models[voice_model] = VoiceModelUsage(voice_model)
        entry.total_micros += day_cost
        entry.characters += day_characters
        entry.request_count += count
    agents: dict[uuid.UUID | None, VoiceAgentUsage] = {}
    ids = Ids()
    for raw_agent, agent_cost, agent_characters, _count in await conn.execute(by_agent, values):
        agent = ids(raw_agent)
        agents[agent] = VoiceAgentUsage(agent, None, agent_cost, agent_characters)
    names = await names_of(conn, Agent, agents)
    for agent_entry in agents.values():
        agent_entry.agent_name = names.get(agent_entry.agent_id) if agent_entry.agent_id else None
    return VoiceUsage(
        daily=[
            VoiceDay(d, sorted_by_cost(m.values(), lambda x: x.total_micros))
            for d, m in days.items()
        ],
        agents=sorted_by_cost(agents.values(), lambda x: x.total_micros),
        models=sorted_by_cost(models.values(), lambda x: x.total_micros),
    )
