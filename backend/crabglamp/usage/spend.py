"""A key's accrued spend: what its monthly cap counts, summed from the recorded events.

The proxy's caps (opening and reconciling a month), the dashboard's key cards and the cap
alerts all read it here, so that the spend a cap enforces is the spend a card shows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.db.chunks import chunks
from crabglamp.db.tables import table_of
from crabglamp.models import LlmDaily, VirtualKey, VoiceEvent
from crabglamp.periods import month_period

_keys = table_of(VirtualKey)
_llm_daily = table_of(LlmDaily)
_voice = table_of(VoiceEvent)


async def spend_of_keys(
    conn: AsyncConnection, key_ids: Iterable[uuid.UUID], month: date
) -> dict[uuid.UUID, int]:
    """Micro-cents per key over the UTC calendar month of `month`: its LLM requests (from the
    daily rollup) and the speech made with it. Every key asked for is in the answer (0 when it
    spent nothing, or does not exist)."""
    period = month_period(month.year, month.month)
    wanted = sorted(set(key_ids))
    spend = dict.fromkeys(wanted, 0)
    for ids in chunks(wanted):
        # Joined on the key's own account: the rollup's primary key leads with the account, and
        # spend recorded under another account is not this key's.
        llm = await conn.execute(
            select(_llm_daily.c.key_id, func.sum(_llm_daily.c.cost_micros))
            .join(
                _keys,
                and_(
                    _keys.c.id == _llm_daily.c.key_id, _keys.c.account_id == _llm_daily.c.account_id
                ),
            )
            .where(
                _keys.c.id.in_(ids),
                _llm_daily.c.day >= period.start,
                _llm_daily.c.day <= period.end,
            )
            .group_by(_llm_daily.c.key_id)
        )
        voice = await conn.execute(
            select(_voice.c.key_id, func.sum(_voice.c.cost_micros))
            .join(
                _keys,
                and_(_keys.c.id == _voice.c.key_id, _keys.c.account_id == _voice.c.account_id),
            )
            .where(
                _keys.c.id.in_(ids),
                _voice.c.ts >= period.start_dt,
                _voice.c.ts < period.end_dt,
            )
            .group_by(_voice.c.key_id)
        )
        for key_id, cost in [*llm, *voice]:
            spend[key_id] += int(cost or 0)
    return spend
