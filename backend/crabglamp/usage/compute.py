"""The compute axis: agents' running and paused time and plain VMs, per day.

Closed intervals come from compute_daily; open ones accrue until now, cut into days here.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, DateTime, cast, literal_column, null, select, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import Agent, ComputeDaily, ComputeInterval, PlainVm
from crabglamp.periods import as_utc, utcnow
from crabglamp.usage._axis import Ids, names_of, raw_id, scope, sorted_by_cost
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import ComputeAgentUsage, ComputeDay, ComputeUsage, PlainVmUsage


async def compute_usage(
    conn: AsyncConnection, query: UsageQuery, now: datetime | None = None
) -> ComputeUsage:
    now = as_utc(now or utcnow())
    daily_table, intervals = table_of(ComputeDaily), table_of(ComputeInterval)
    rolled_up = select(
        daily_table.c.day,
        raw_id(daily_table.c.agent_id),
        raw_id(daily_table.c.plain_vm_id),
        daily_table.c.state,
        daily_table.c.cost_micros,
        daily_table.c.duration_us,
        cast(null(), DateTime(timezone=True)).label("start"),
        literal_column("0", BigInteger).label("rate"),
    ).where(*scope(daily_table, query))
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
        raw_id(intervals.c.agent_id),
        raw_id(intervals.c.plain_vm_id),
        intervals.c.state,
        literal_column("0", BigInteger),
        literal_column("0", BigInteger),
        intervals.c.start,
        intervals.c.cents_per_hour_micros,
    ).where(*still_open)

    # Summed per day only; the period's totals are the days' entries added up afterwards, so
    # each of the month's rows touches one entry, not two.
    days: dict[
        date, tuple[dict[uuid.UUID | None, ComputeAgentUsage], dict[uuid.UUID, PlainVmUsage]]
    ]
    days = {d: ({}, {}) for d in query.period.days}
    ids = Ids()
    for day, raw_agent, raw_vm, state, cost, duration, start, rate in await conn.execute(
        union_all(rolled_up, accruing)
    ):
        if day is not None:
            pieces: list[tuple[date, int, int]] = [(day, cost, duration)]
        else:
            pieces = [
                piece
                for piece in compute_cost_pieces(as_utc(start), now, rate)
                if query.period.start <= piece[0] <= query.period.end
            ]
        plain_vm_id = ids(raw_vm)
        agent = ids(raw_agent)
        for piece_day, piece_cost, piece_us in pieces:
            day_agents, day_vms = days[piece_day]
            if plain_vm_id is not None:
                vm = day_vms.get(plain_vm_id)
                if vm is None:
                    vm = day_vms[plain_vm_id] = PlainVmUsage(plain_vm_id, None)
                vm.cost_micros += piece_cost
                vm.duration_us += piece_us
                continue
            entry = day_agents.get(agent)
            if entry is None:
                entry = day_agents[agent] = ComputeAgentUsage(agent, None)
            if state == "paused":
                entry.paused_micros += piece_cost
                entry.paused_us += piece_us
            else:
                entry.running_micros += piece_cost
                entry.running_us += piece_us

    agents: dict[uuid.UUID | None, ComputeAgentUsage] = {}
    vms: dict[uuid.UUID, PlainVmUsage] = {}
    for day_agents, day_vms in days.values():
        for agent, entry in day_agents.items():
            whole = agents.get(agent)
            if whole is None:
                whole = agents[agent] = ComputeAgentUsage(agent, None)
            whole.running_micros += entry.running_micros
            whole.paused_micros += entry.paused_micros
            whole.running_us += entry.running_us
            whole.paused_us += entry.paused_us
        for vm_id, vm in day_vms.items():
            whole_vm = vms.get(vm_id)
            if whole_vm is None:
                whole_vm = vms[vm_id] = PlainVmUsage(vm_id, None)
            whole_vm.cost_micros += vm.cost_micros
            whole_vm.duration_us += vm.duration_us

    agent_names = await names_of(conn, Agent, agents)
    vm_names = await names_of(conn, PlainVm, vms)
    for day_agents, day_vms in (*days.values(), (agents, vms)):
        for entry in day_agents.values():
            entry.agent_name = agent_names.get(entry.agent_id) if entry.agent_id else None
        for vm in day_vms.values():
            vm.plain_vm_name = vm_names.get(vm.plain_vm_id)
    return ComputeUsage(
        daily=[
            ComputeDay(
                d,
                sorted_by_cost(day_agents.values(), lambda x: x.total_micros),
                sorted_by_cost(day_vms.values(), lambda x: x.cost_micros),
            )
            for d, (day_agents, day_vms) in days.items()
        ],
        agents=sorted_by_cost(agents.values(), lambda x: x.total_micros),
        plain_vms=sorted_by_cost(vms.values(), lambda x: x.cost_micros),
    )
