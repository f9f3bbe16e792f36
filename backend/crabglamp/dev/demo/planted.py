"""The three anomalies of CONTRACTS.md §3.2, planted relative to now.

A leaked token floods a quiet key for the last six hours (SPIKE_ON_QUIET_KEY), a looping script
runs for hours on a weekly job's key a few days ago (RUNAWAY_DAY), and the busiest key heads past
its cap (CAP_TRAJECTORY, whose cap `caps.py` sets). Their ids name their own minute, so a later
run extends the flood and never plants a second runaway.
"""

from __future__ import annotations

import math
import random
from datetime import date, timedelta
from typing import Final

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.tables import table_of
from crabglamp.dev.demo.specs import AGENT_BY_NAME, KEY_BY_NAME, TOKEN_SIGMA
from crabglamp.dev.demo.window import Window
from crabglamp.ingest.records import LlmRecord, Record
from crabglamp.models import LlmDaily
from crabglamp.periods import day_start

# The three anomalies of CONTRACTS.md §3.2, one key each.
PLANTED: Final = {
    "spike_key_id": KEY_BY_NAME["legacy-zapier"].id,  # SPIKE_ON_QUIET_KEY: its token leaked
    "cap_key_id": KEY_BY_NAME["support-prod"].id,  # CAP_TRAJECTORY: heading past its cap
    "runaway_key_id": KEY_BY_NAME["nightly-batch"].id,  # RUNAWAY_DAY: a script looped for hours
    "runaway_agent_id": AGENT_BY_NAME["data-pipeline"].id,
}
SPIKE_HOURS: Final = 6
SPIKE_MODEL: Final = "gpt-4.1"
SPIKE_PER_MINUTE: Final = 4.0  # about 80 of the key's ordinary days in six hours
RUNAWAY_MODEL: Final = "gpt-4.1"
RUNAWAY_PER_MINUTE: Final = 14.0
RUNAWAY_START: Final = timedelta(hours=1, minutes=12)
RUNAWAY_MINUTES: Final = 7 * 60
RUNAWAY_DAYS_AGO: Final = 3
# A day with this many requests on the runaway key is the runaway, whichever run planted it.
_RUNAWAY_MIN_REQUESTS: Final = 1000


def spike(w: Window, day: date) -> list[Record]:
    """The leaked token: a flood of large gpt-4.1 requests for the last six hours."""
    spec = KEY_BY_NAME["legacy-zapier"]
    out: list[Record] = []
    minute = max(w.spike_start, day_start(day))
    end = min(w.now, day_start(day + timedelta(days=1)))
    while minute < end:
        # Each minute is its own pure function, so a later run extends the flood consistently.
        rng = random.Random(f"{w.prefix}:spike:{minute:%Y%m%d%H%M}")
        count = int(max(0.0, SPIKE_PER_MINUTE + 1.5 * rng.gauss(0.0, 1.0)) + rng.random())
        for i in range(count):
            ts = minute + timedelta(milliseconds=int(rng.random() * 60_000))
            tokens_in = int(4000 * math.exp(TOKEN_SIGMA * rng.gauss(0.0, 1.0)))
            tokens_out = int(900 * math.exp(TOKEN_SIGMA * rng.gauss(0.0, 1.0)))
            if ts <= w.now:
                out.append(
                    LlmRecord(
                        f"{w.prefix}-k{spec.no:02d}-s{minute:%Y%m%d%H%M}-{i}",
                        ts,
                        spec.id,
                        "openai",
                        SPIKE_MODEL,
                        max(1, tokens_in),
                        max(1, tokens_out),
                    )
                )
        minute += timedelta(minutes=1)
    return out


def runaway(w: Window, day: date) -> list[Record]:
    """The runaway script: hours of one model in a loop, in the small hours of one day."""
    if day != w.runaway_day:
        return []
    spec = KEY_BY_NAME["nightly-batch"]
    agent_id = AGENT_BY_NAME["data-pipeline"].id
    out: list[Record] = []
    first = day_start(day) + RUNAWAY_START
    for n in range(RUNAWAY_MINUTES):
        minute = first + timedelta(minutes=n)
        if minute > w.now:
            break
        rng = random.Random(f"{w.prefix}:runaway:{minute:%Y%m%d%H%M}")
        # The loop slows down as the upstream starts rate-limiting it.
        rate = RUNAWAY_PER_MINUTE * (1.15 - 0.3 * n / RUNAWAY_MINUTES)
        count = int(max(0.0, rate + 2.5 * rng.gauss(0.0, 1.0)) + rng.random())
        for i in range(count):
            ts = minute + timedelta(milliseconds=int(rng.random() * 60_000))
            tokens_in = int(3000 * math.exp(0.2 * rng.gauss(0.0, 1.0)))
            tokens_out = int(700 * math.exp(0.3 * rng.gauss(0.0, 1.0)))
            if ts <= w.now:
                out.append(
                    LlmRecord(
                        f"{w.prefix}-k{spec.no:02d}-r{minute:%Y%m%d%H%M}-{i}",
                        ts,
                        spec.id,
                        "openai",
                        RUNAWAY_MODEL,
                        max(1, tokens_in),
                        max(1, tokens_out),
                        agent_id=agent_id,
                    )
                )
    return out


async def earlier_runaway(conn: AsyncConnection, today: date) -> date | None:
    """A runaway planted by an earlier run stays the runaway; a re-run does not plant another."""
    daily = table_of(LlmDaily)
    found = (
        await conn.execute(
            select(daily.c.day)
            .where(
                and_(
                    daily.c.key_id == PLANTED["runaway_key_id"],
                    daily.c.model == RUNAWAY_MODEL,
                    daily.c.request_count >= _RUNAWAY_MIN_REQUESTS,
                    daily.c.day >= today - timedelta(days=40),
                    daily.c.day <= today,
                )
            )
            .order_by(daily.c.day.desc())
            .limit(1)
        )
    ).first()
    return found[0] if found else None
