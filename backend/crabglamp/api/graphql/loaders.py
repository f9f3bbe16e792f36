"""Per-request DataLoaders: each number is read once per request, each list in one statement.

Usage axes are keyed by their `UsageQuery`, so a document that asks for `usage` in three places
with the same filter computes each axis once; keys, agents and spend are batched by id.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncConnection
from strawberry.dataloader import DataLoader

from crabglamp.access import Caller, administers
from crabglamp.accounts import (
    accounts_by_id,
    agents_of_accounts,
    plain_vms_of_accounts,
)
from crabglamp.api.graphql.context import RequestDatabase
from crabglamp.api.graphql.virtual_keys.data import keys_by_id, keys_of_accounts
from crabglamp.models import Account, Agent, PlainVm, VirtualKey
from crabglamp.periods import current_month
from crabglamp.usage.compute import compute_usage
from crabglamp.usage.llm import llm_usage
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.request_log import RequestLogQuery, RequestLogSummary, request_log_summary
from crabglamp.usage.results import ComputeUsage, LlmUsage, VoiceUsage
from crabglamp.usage.spend import spend_of_keys
from crabglamp.usage.voice import voice_usage

_K = TypeVar("_K")
_V = TypeVar("_V")


class Loaders:
    def __init__(self, db: RequestDatabase, now: datetime, caller: Caller | None = None) -> None:
        self._db = db
        self._now = now
        self._caller = caller
        self.compute: DataLoader[UsageQuery, ComputeUsage] = DataLoader(self._compute)
        self.llm: DataLoader[UsageQuery, LlmUsage] = DataLoader(self._llm)
        self.voice: DataLoader[UsageQuery, VoiceUsage] = DataLoader(self._voice)
        self.request_summary: DataLoader[RequestLogQuery, RequestLogSummary] = DataLoader(
            self._request_summary
        )
        self.account: DataLoader[uuid.UUID, Account | None] = DataLoader(self._accounts)
        self.keys_of_account: DataLoader[uuid.UUID, list[VirtualKey]] = DataLoader(
            self._keys_of_accounts
        )
        self.key: DataLoader[uuid.UUID, VirtualKey | None] = DataLoader(self._keys)
        self.accrued_micros: DataLoader[uuid.UUID, int] = DataLoader(self._accrued)
        self.agents_of_account: DataLoader[uuid.UUID, list[Agent]] = DataLoader(
            self._agents_of_accounts
        )
        self.plain_vms_of_account: DataLoader[uuid.UUID, list[PlainVm]] = DataLoader(
            self._plain_vms_of_accounts
        )
        # Whether this request's caller administers an account: what the page may offer it.
        self.administers: DataLoader[uuid.UUID, bool] = DataLoader(self._administers)

    # Usage: different filters cannot share a statement, but each is computed once

    async def _each(self, keys: Sequence[_K], compute: Callable[..., Awaitable[_V]]) -> list[_V]:
        async def every(conn: AsyncConnection) -> list[_V]:
            return [await compute(conn, key) for key in keys]

        return await self._db.run(every)

    async def _compute(self, queries: list[UsageQuery]) -> list[ComputeUsage]:
        async def one(conn: AsyncConnection, query: UsageQuery) -> ComputeUsage:
            return await compute_usage(conn, query, self._now)

        return await self._each(queries, one)

    async def _llm(self, queries: list[UsageQuery]) -> list[LlmUsage]:
        return await self._each(queries, llm_usage)

    async def _voice(self, queries: list[UsageQuery]) -> list[VoiceUsage]:
        return await self._each(queries, voice_usage)

    async def _request_summary(self, queries: list[RequestLogQuery]) -> list[RequestLogSummary]:
        return await self._each(queries, request_log_summary)

    # Rows by id: one statement per batch

    async def _accounts(self, ids: list[uuid.UUID]) -> list[Account | None]:
        found = await self._db.run(lambda conn: accounts_by_id(conn, ids))
        return [found.get(i) for i in ids]

    async def _keys_of_accounts(self, ids: list[uuid.UUID]) -> list[list[VirtualKey]]:
        found = await self._db.run(lambda conn: keys_of_accounts(conn, ids))
        return [found.get(i, []) for i in ids]

    async def _keys(self, ids: list[uuid.UUID]) -> list[VirtualKey | None]:
        found = await self._db.run(lambda conn: keys_by_id(conn, ids))
        return [found.get(i) for i in ids]

    async def _accrued(self, ids: list[uuid.UUID]) -> list[int]:
        # A cap is per calendar month: accrued spend is this UTC month's.
        found = await self._db.run(
            lambda conn: spend_of_keys(conn, ids, current_month(self._now).start)
        )
        return [found.get(i, 0) for i in ids]

    async def _agents_of_accounts(self, ids: list[uuid.UUID]) -> list[list[Agent]]:
        found = await self._db.run(lambda conn: agents_of_accounts(conn, ids))
        return [found.get(i, []) for i in ids]

    async def _plain_vms_of_accounts(self, ids: list[uuid.UUID]) -> list[list[PlainVm]]:
        found = await self._db.run(lambda conn: plain_vms_of_accounts(conn, ids))
        return [found.get(i, []) for i in ids]

    async def _administers(self, ids: list[uuid.UUID]) -> list[bool]:
        # Per account, not per row: a page shows one account (or a few), whatever it lists.
        caller = self._caller
        if caller is None:
            return [False for _ in ids]

        async def each(conn: AsyncConnection) -> list[bool]:
            return [await administers(conn, caller, i) for i in ids]

        return await self._db.run(each)
