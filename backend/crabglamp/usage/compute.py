"""The compute axis: agents' running and paused time and plain VMs, per day.

Closed intervals come from compute_daily; open ones accrue until now, cut into days here.
"""

from __future__ import annotations

from datetime import date, datetime
from functools import cache
from itertools import chain
from typing import Any

from sqlalchemy import (
    BigInteger,
    CompoundSelect,
    Date,
    DateTime,
    String,
    bindparam,
    case,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.intervals import compute_cost_pieces
from crabglamp.models import Agent, ComputeDaily, ComputeInterval, PlainVm
from crabglamp.periods import as_utc, utcnow
from crabglamp.usage._axis import (
    Ids,
    Shape,
    in_accounts,
    names_of,
    parameters,
    raw_id,
    scope,
    shape_of,
    sorted_by_cost,
    total,
)
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import ComputeAgentUsage, ComputeDay, ComputeUsage, PlainVmUsage


@cache
def _rows(shape: Shape) -> CompoundSelect[Any]:
    daily_table, intervals = table_of(ComputeDaily), table_of(ComputeInterval)
    paused = daily_table.c.state == "paused"
    # Running and paused side by side: a row per day and agent (or VM), half as many to read.
    rolled_up = (
        select(
            daily_table.c.day,
            raw_id(daily_table.c.agent_id),
            raw_id(daily_table.c.plain_vm_id),
            total(case((paused, 0), else_=daily_table.c.cost_micros)),
            total(case((paused, daily_table.c.cost_micros), else_=0)),
            total(case((paused, 0), else_=daily_table.c.duration_us)),
            total(case((paused, daily_table.c.duration_us), else_=0)),
            cast(null(), DateTime(timezone=True)).label("start"),
            literal_column("0", BigInteger).label("rate"),
            cast(null(), String).label("state"),
        )
        .where(*scope(daily_table, shape))
        .group_by(daily_table.c.day, daily_table.c.agent_id, daily_table.c.plain_vm_id)
    )
    # Open intervals are not rolled up (their end is unknown); they accrue until now. One
    # statement reads both, so an interval closed meanwhile is counted once, never 0 or 2 times.
    still_open = [
        intervals.c.end.is_(None),
        intervals.c.start < bindparam("period_end"),
        intervals.c.start < bindparam("now"),
        *in_accounts(intervals, shape.accounts),
    ]
    if shape.agent:
        still_open.append(intervals.c.agent_id == bindparam("agent"))
    zero = literal_column("0", BigInteger)
    accruing = select(
        cast(null(), Date),
        raw_id(intervals.c.agent_id),
        raw_id(intervals.c.plain_vm_id),
        zero,
        zero,
        zero,
        zero,
        intervals.c.start,
        intervals.c.cents_per_hour_micros,
        intervals.c.state,
    ).where(*still_open)
    return union_all(rolled_up, accruing)


async def compute_usage(
    conn: AsyncConnection, query: UsageQuery, now: datetime | None = None
) -> ComputeUsage:
    now = as_utc(now or utcnow())
    values = parameters(query)
    values["period_end"], values["now"] = query.period.end_dt, now
    statement = _rows(shape_of(query))

    # Summed per day only; the period's totals are the days' entries added up afterwards, so
    # each of the month's rows touches one entry, not two. Entries are indexed by `Ids.key`.
    days: dict[date, tuple[dict[int | None, ComputeAgentUsage], dict[int, PlainVmUsage]]]
    days = {d: ({}, {}) for d in query.period.days}
    ids = Ids()
    key = ids.key
    rows = (await conn.execute(statement, values)).all()
    # An open interval (a few per account) becomes the day rows it would be rolled up into.
    accrued = [
        (
            piece_day,
            raw_agent,
            raw_vm,
            *((0, cost, 0, us) if state == "paused" else (cost, 0, us, 0)),
        )
        for day, raw_agent, raw_vm, *_sums, start, rate, state in rows
        if day is None
        for piece_day, cost, us in compute_cost_pieces(as_utc(start), now, rate)
        if query.period.start <= piece_day <= query.period.end
    ]
    for day, raw_agent, raw_vm, running, paused, running_us, paused_us, *_ in chain(rows, accrued):
        if day is None:
            continue
        day_agents, day_vms = days[day]
        vm_key = key(raw_vm)
        if vm_key is not None:
            vm = day_vms.get(vm_key)
            if vm is None:
                vm_id = ids(raw_vm)
                assert vm_id is not None  # it has a key
                vm = day_vms[vm_key] = PlainVmUsage(vm_id, None)
            vm.cost_micros += running + paused
            vm.duration_us += running_us + paused_us
            continue
        agent_key = key(raw_agent)
        entry = day_agents.get(agent_key)
        if entry is None:
            day_agents[agent_key] = ComputeAgentUsage(
                ids(raw_agent), None, running, paused, running_us, paused_us
            )
        else:  # a day's closed and open time, or "no agent" read as NULL and as NONE_ID
            entry.running_micros += running
            entry.paused_micros += paused
            entry.running_us += running_us
            entry.paused_us += paused_us

    agents: dict[int | None, ComputeAgentUsage] = {}
    vms: dict[int, PlainVmUsage] = {}
    for day_agents, day_vms in days.values():
        for agent_key, entry in day_agents.items():
            whole = agents.get(agent_key)
            if whole is None:
                whole = agents[agent_key] = ComputeAgentUsage(entry.agent_id, None)
            whole.running_micros += entry.running_micros
            whole.paused_micros += entry.paused_micros
            whole.running_us += entry.running_us
            whole.paused_us += entry.paused_us
        for vm_key, vm in day_vms.items():
            whole_vm = vms.get(vm_key)
            if whole_vm is None:
                whole_vm = vms[vm_key] = PlainVmUsage(vm.plain_vm_id, None)
            whole_vm.cost_micros += vm.cost_micros
            whole_vm.duration_us += vm.duration_us

    names = await names_of(conn, Agent, (a.agent_id for a in agents.values()))
    agent_names = {k: names.get(a.agent_id) if a.agent_id else None for k, a in agents.items()}
    names = await names_of(conn, PlainVm, (v.plain_vm_id for v in vms.values()))
    vm_names = {k: names.get(v.plain_vm_id) for k, v in vms.items()}
    for day_agents, day_vms in (*days.values(), (agents, vms)):
        for agent_key, entry in day_agents.items():
            entry.agent_name = agent_names[agent_key]
        for vm_key, vm in day_vms.items():
            vm.plain_vm_name = vm_names[vm_key]
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
