"""`Viewer`: the signed-in caller, the account in view and the caller's role in it."""

from __future__ import annotations

import uuid
from enum import Enum
from typing import TYPE_CHECKING, Annotated

import strawberry

from crabglamp.access import administers
from crabglamp.api.graphql.context import Info

if TYPE_CHECKING:
    from crabglamp.api.graphql.accounts.types import AccountType


@strawberry.enum(name="AccountRole", description="What the caller may do in an account.")
class AccountRole(Enum):
    ADMIN = strawberry.enum_value(
        "ADMIN", description="Read it and administer it: keys, caps, alert endpoints, imports."
    )
    MEMBER = strawberry.enum_value("MEMBER", description="Read its usage only.")


@strawberry.type(
    name="Viewer",
    description="The signed-in caller, the account a page shows (the one asked for, else the "
    "caller's default) and the caller's role in it.",
)
class ViewerType:
    user_id: str = strawberry.field(description="The caller's user id (the token's subject).")
    organization_id: str | None = strawberry.field(
        description="The caller's active organisation, if any."
    )
    is_platform_admin: bool = strawberry.field(
        description="A platform admin (signed claim): may read every account and ask for the "
        "platform-wide view (admin: true)."
    )
    account_id: strawberry.Private[uuid.UUID | None]

    @strawberry.field(
        description="The account in view; null when the caller has none (a platform admin, or "
        "a new user) or when a platform admin asked for an id that no account has."
    )
    async def account(
        self, info: Info
    ) -> Annotated[AccountType, strawberry.lazy("crabglamp.api.graphql.accounts.types")] | None:
        from crabglamp.api.graphql.accounts.types import AccountType

        if self.account_id is None:
            return None
        found = await info.context.loaders.account.load(self.account_id)
        return None if found is None else AccountType(account=found)

    @strawberry.field(
        description="The caller's role in the account in view (ADMIN: may change its keys and "
        "caps; MEMBER: may read only); null without an account."
    )
    async def role(self, info: Info) -> AccountRole | None:
        account_id = self.account_id
        if account_id is None or await info.context.loaders.account.load(account_id) is None:
            return None
        caller = info.context.caller
        admin = await info.context.db.run(lambda conn: administers(conn, caller, account_id))
        return AccountRole.ADMIN if admin else AccountRole.MEMBER
