"""`usageChanged`: served over WebSocket (graphql-transport-ws) by api/graphql/view.py.

The caller was authenticated when the socket opened (view.py); here the account is authorised
like any field's (`account_scope`), then the process's `ChangeFeed` (db/changes.py) is listened
to until the client completes the operation or the socket closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Annotated

import strawberry
from graphql import GraphQLError

from crabglamp.api.graphql.arguments import AccountIdArg
from crabglamp.api.graphql.context import Info, SocketContext
from crabglamp.api.graphql.live.types import UsageChangeType
from crabglamp.api.graphql.permissions import account_scope, optional_uuid
from crabglamp.db.changes import TooManyListeners

TOO_MANY_SUBSCRIPTIONS = "TOO_MANY_SUBSCRIPTIONS"

AdminArg = Annotated[
    bool,
    strawberry.argument(description="Platform admins: every account (with accountId null)."),
]


@strawberry.type
class LiveSubscriptions:
    @strawberry.subscription(
        description=(
            "Tells of each committed change to the account's usage, keys or anomalies, at most "
            "a few times a second; over WebSocket (graphql-transport-ws) only. The first "
            "message, with no kinds, says the subscription is listening."
        )
    )
    async def usage_changed(
        self, info: Info, account_id: AccountIdArg = None, admin: AdminArg = False
    ) -> AsyncGenerator[UsageChangeType, None]:
        context = info.context
        if not isinstance(context, SocketContext) or context.feed is None:
            raise GraphQLError(
                "usageChanged is served over a WebSocket on /graphql (graphql-transport-ws)",
                extensions={"code": "BAD_REQUEST"},
            )
        try:
            accounts = await account_scope(info, optional_uuid(account_id, "accountId"), admin)
        finally:
            # The socket lives for hours: it must not hold a database snapshot meanwhile.
            await context.db.close()
        try:
            async with context.feed.listen(accounts) as listener:
                # Listening from here on: the first message says so (no kinds), so a client
                # knows that nothing committed after it is missed.
                only = accounts[0] if accounts is not None and len(accounts) == 1 else None
                yield UsageChangeType(
                    account_id=None if only is None else strawberry.ID(str(only)), kinds=[]
                )
                while True:
                    news = await listener.next()
                    for account, kinds in sorted(news.items(), key=lambda item: str(item[0])):
                        yield UsageChangeType(
                            account_id=None if account is None else strawberry.ID(str(account)),
                            kinds=sorted(kinds),
                        )
                    # Coalescing: what arrives meanwhile waits, merged, for the next message.
                    await asyncio.sleep(context.settings.live.min_interval_seconds)
        except TooManyListeners as exc:
            raise GraphQLError(str(exc), extensions={"code": TOO_MANY_SUBSCRIPTIONS}) from None
