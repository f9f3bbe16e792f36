"""`alertEndpoints` and `alertDeliveries`: an account's webhooks and what was sent to them."""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.access import administers
from crabglamp.api.graphql.alerts.types import (
    AlertDeliveryStatus,
    AlertDeliveryType,
    AlertEndpointType,
)
from crabglamp.api.graphql.arguments import AccountIdArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import account_scope, bad_input, optional_uuid
from crabglamp.jobs.alerts import deliveries, endpoints

MAX_DELIVERIES = 200


@strawberry.type
class AlertQueries:
    @strawberry.field(description="The account's alert endpoints (default: the caller's account).")
    async def alert_endpoints(
        self,
        info: Info,
        account_id: AccountIdArg = None,
    ) -> list[AlertEndpointType]:
        scope = await account_scope(info, optional_uuid(account_id, "accountId"))
        caller = info.context.caller

        async def read(
            conn: AsyncConnection,
        ) -> tuple[list[endpoints.EndpointView], set[uuid.UUID]]:
            found = await endpoints.endpoints_of(conn, scope or ())
            # Members read an account's endpoints, but only its admins see their whole URLs.
            admin_of = {
                account_id
                for account_id in {e.account_id for e in found}
                if await administers(conn, caller, account_id)
            }
            return found, admin_of

        found, admin_of = await info.context.db.run(read)
        return [AlertEndpointType(endpoint=e, admin=e.account_id in admin_of) for e in found]

    @strawberry.field(
        description="Alerts sent (or being sent) to the account's endpoints, newest first, "
        "each with its attempts."
    )
    async def alert_deliveries(
        self,
        info: Info,
        account_id: AccountIdArg = None,
        endpoint_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this endpoint's.")
        ] = None,
        status: Annotated[
            AlertDeliveryStatus | None, strawberry.argument(description="Only these.")
        ] = None,
        first: Annotated[
            int, strawberry.argument(description=f"At most this many (1 to {MAX_DELIVERIES}).")
        ] = 50,
    ) -> list[AlertDeliveryType]:
        if not 1 <= first <= MAX_DELIVERIES:
            raise bad_input("first", f"first is between 1 and {MAX_DELIVERIES}")
        scope = await account_scope(info, optional_uuid(account_id, "accountId"))
        endpoint = optional_uuid(endpoint_id, "endpointId")
        found = await info.context.db.run(
            lambda conn: deliveries.deliveries_of(
                conn, scope or (), endpoint, None if status is None else str(status.value), first
            )
        )
        return [AlertDeliveryType(delivery=d) for d in found]
