"""The usage service: the three axes for a period and filters, from rollups.

Plain Python over SQLAlchemy Core: neither strawberry nor starlette is imported on the read side,
so the REST endpoint, GraphQL and the CLI all read the same numbers. Each axis has its module
(`compute.py`, `llm.py`, `voice.py`); the request log is `request_log.py`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.usage.compute import compute_usage
from crabglamp.usage.llm import llm_usage
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import Usage
from crabglamp.usage.voice import voice_usage


async def usage(conn: AsyncConnection, query: UsageQuery, now: datetime | None = None) -> Usage:
    return Usage(
        period=query.period,
        compute=await compute_usage(conn, query, now),
        llm=await llm_usage(conn, query),
        voice=await voice_usage(conn, query),
    )
