"""`invoice(accountId:, month:)` (CONTRACTS.md §3.1)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

import strawberry

from crabglamp.api.graphql.arguments import AccountIdArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.invoice.types import InvoiceType
from crabglamp.api.graphql.permissions import optional_uuid, usage_query
from crabglamp.usage import invoice as core
from crabglamp.usage.filter import UsageFilter
from crabglamp.usage.results import Usage


async def invoice_of(info: Info, account_id: uuid.UUID | None, month: str | None) -> InvoiceType:
    """Through the same loaders as `usage`, so an invoice next to usage costs nothing more."""
    query = await usage_query(info, UsageFilter(month=month, account_id=account_id))
    loaders = info.context.loaders
    compute, llm, voice = await asyncio.gather(
        loaders.compute.load(query), loaders.llm.load(query), loaders.voice.load(query)
    )
    spent = Usage(period=query.period, compute=compute, llm=llm, voice=voice)
    return InvoiceType(invoice=core.invoice_from_usage(core.month_name(query.period), spent))


@strawberry.type
class InvoiceQueries:
    @strawberry.field(description="A month's invoice (default: the caller's account, this month).")
    async def invoice(
        self,
        info: Info,
        account_id: AccountIdArg = None,
        month: Annotated[
            str | None, strawberry.argument(description="A UTC month, YYYY-MM; default: this one.")
        ] = None,
    ) -> InvoiceType:
        return await invoice_of(info, optional_uuid(account_id, "accountId"), month)
