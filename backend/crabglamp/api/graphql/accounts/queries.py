"""`accounts` and `account(id:)`: where a nested query starts."""

from __future__ import annotations

import uuid
from typing import Annotated

import strawberry
from sqlalchemy.ext.asyncio import AsyncConnection

from crabglamp.accounts import accounts_by_id
from crabglamp.api.graphql.accounts.types import AccountType
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import caller_errors, forbidden, optional_uuid
from crabglamp.models import Account


@strawberry.type
class AccountQueries:
    @strawberry.field(description="The accounts the caller may read, by name.")
    async def accounts(
        self,
        info: Info,
        admin: Annotated[
            bool | None,
            strawberry.argument(description="Every account (platform admins only)."),
        ] = False,
    ) -> list[AccountType]:
        context = info.context
        if admin and not context.caller.is_platform_admin:
            raise forbidden("admin is for platform admins only")
        with caller_errors():

            async def read(conn: AsyncConnection) -> dict[uuid.UUID, Account]:
                ids = None if admin else sorted(await context.scope.readable(conn))
                return await accounts_by_id(conn, ids)

            found = await context.db.run(read)
        for account in found.values():
            context.loaders.account.prime(account.id, account)
        return [AccountType(account=a) for a in found.values()]

    @strawberry.field(description="One account the caller may read.")
    async def account(
        self, info: Info, id: Annotated[strawberry.ID, strawberry.argument(description="Its id.")]
    ) -> AccountType | None:
        account_id = optional_uuid(id, "id")
        assert account_id is not None
        context = info.context
        allowed = await context.db.run(lambda conn: context.scope.may_read(conn, account_id))
        if not allowed:
            raise forbidden(f"you may not read account {account_id}")
        account = await context.loaders.account.load(account_id)
        return None if account is None else AccountType(account=account)
