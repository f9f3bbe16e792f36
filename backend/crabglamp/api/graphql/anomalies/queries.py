"""`anomalies(accountId:, month:, from:, to:)` (CONTRACTS.md §3.1)."""

from __future__ import annotations

import uuid
from datetime import date

import strawberry

from crabglamp.api.graphql.anomalies.types import AnomalyType
from crabglamp.api.graphql.arguments import AccountIdArg, FromArg, MonthArg, ToArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import optional_uuid, usage_query
from crabglamp.jobs.anomalies.period import anomalies_in_period
from crabglamp.usage.filter import UsageFilter
from crabglamp.usage.query import UsageQuery


async def anomalies_of(info: Info, query: UsageQuery) -> list[AnomalyType]:
    """The anomalies of an authorised account and period: those detected as usage arrived, and
    what each day of the period would have raised (crabglamp.jobs.anomalies), newest first."""
    accounts = query.account_ids
    if not accounts:
        return []
    context = info.context
    found = await context.db.run(
        lambda conn: anomalies_in_period(
            conn, accounts, query.period, context.now, context.settings.thresholds
        )
    )
    # Resolved ones stay in the list: the period's history, with what was done.
    return [AnomalyType(anomaly=a) for a in found]


async def resolve_anomalies(
    info: Info,
    account_id: uuid.UUID | None,
    month: str | None,
    date_from: date | None,
    date_to: date | None,
) -> list[AnomalyType]:
    query = await usage_query(
        info, UsageFilter(month=month, date_from=date_from, date_to=date_to, account_id=account_id)
    )
    return await anomalies_of(info, query)


@strawberry.type
class AnomalyQueries:
    @strawberry.field(
        description="Anomalies detected (or that would have been) in the period, newest first "
        "(default: the caller's account, this month)."
    )
    async def anomalies(
        self,
        info: Info,
        account_id: AccountIdArg = None,
        month: MonthArg = None,
        date_from: FromArg = None,
        date_to: ToArg = None,
    ) -> list[AnomalyType]:
        return await resolve_anomalies(
            info, optional_uuid(account_id, "accountId"), month, date_from, date_to
        )
