"""`usage(filter:)` (CONTRACTS.md §3.1): the same numbers as GET /api/usage."""

from __future__ import annotations

from typing import Annotated

import strawberry

from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import usage_query
from crabglamp.api.graphql.usage.inputs import UsageFilterInput
from crabglamp.api.graphql.usage.types import UsageType


@strawberry.type
class UsageQueries:
    @strawberry.field(
        description="Spend on compute, LLM and voice for a period and filter (default: the "
        "caller's account, this UTC month)."
    )
    async def usage(
        self,
        info: Info,
        filter: Annotated[
            UsageFilterInput | None, strawberry.argument(description="What to count.")
        ] = None,
    ) -> UsageType:
        wanted = (filter or UsageFilterInput()).to_filter()
        return UsageType(query=await usage_query(info, wanted))
