"""The voice axis: spend and characters per day, voice model and agent, from voice_daily."""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.models import Agent, VoiceDaily
from crabglamp.usage._axis import Ids, names_of, raw_id, scope, sorted_by_cost, total
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import VoiceAgentUsage, VoiceDay, VoiceModelUsage, VoiceUsage


async def voice_usage(conn: AsyncConnection, query: UsageQuery) -> VoiceUsage:
    table = table_of(VoiceDaily)
    conditions = scope(table, query)
    if query.voice_model is not None:
        conditions.append(table.c.voice_model == query.voice_model)
    where = and_(*conditions)
    # The database sums (rollup rows are per agent, day and model; the breakdowns need far
    # fewer), which beats building and adding thousands of rows in Python.
    cost, characters = total(table.c.cost_micros), total(table.c.characters)
    by_day_model = await conn.execute(
        select(table.c.day, table.c.voice_model, cost, characters, total(table.c.request_count))
        .where(where)
        .group_by(table.c.day, table.c.voice_model)
    )
    days: dict[date, dict[str, VoiceModelUsage]] = {d: {} for d in query.period.days}
    models: dict[str, VoiceModelUsage] = {}
    for day, voice_model, day_cost, day_characters, count in by_day_model:
        days[day][voice_model] = VoiceModelUsage(voice_model, day_cost, day_characters, count)
        entry = models.get(voice_model)
        if entry is None:
            entry = models[voice_model] = VoiceModelUsage(voice_model)
        entry.total_micros += day_cost
        entry.characters += day_characters
        entry.request_count += count
    by_agent = await conn.execute(
        select(raw_id(table.c.agent_id), cost, characters).where(where).group_by(table.c.agent_id)
    )
    agents: dict[uuid.UUID | None, VoiceAgentUsage] = {}
    ids = Ids()
    for raw_agent, agent_cost, agent_characters in by_agent:
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
