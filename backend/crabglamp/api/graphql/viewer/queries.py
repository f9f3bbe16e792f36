"""`viewer(accountId:)`: what a page needs to know before it offers an action."""

from __future__ import annotations

import strawberry

from crabglamp.api.graphql.arguments import AccountIdArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import account_scope, optional_uuid
from crabglamp.api.graphql.viewer.types import ViewerType


@strawberry.type
class ViewerQueries:
    @strawberry.field(
        description="Who is signed in, the account in view and their role in it. An account "
        "the caller may not read is refused (FORBIDDEN); a malformed id is BAD_USER_INPUT."
    )
    async def viewer(self, info: Info, account_id: AccountIdArg = None) -> ViewerType:
        scope = await account_scope(info, optional_uuid(account_id, "accountId"))
        caller = info.context.caller
        return ViewerType(
            user_id=caller.user_id,
            organization_id=caller.org_id,
            is_platform_admin=caller.is_platform_admin,
            account_id=scope[0] if scope else None,
        )
