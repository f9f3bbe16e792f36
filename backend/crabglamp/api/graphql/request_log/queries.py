"""`requests(...)`: the drill-down behind a bar segment (one day, optionally a key and model)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry

from crabglamp.api.graphql.arguments import AccountIdArg, AgentArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import bad_input, optional_uuid, usage_query, uuids
from crabglamp.api.graphql.request_log.types import LlmRequestConnectionType
from crabglamp.usage.filter import UsageFilter
from crabglamp.usage.request_log import RequestLogQuery, decode_cursor, request_log

MAX_PAGE = 500


@strawberry.type
class RequestLogQueries:
    @strawberry.field(
        description="One UTC day's LLM requests, oldest first, keyset-paginated "
        "(default: the caller's account)."
    )
    async def requests(
        self,
        info: Info,
        date: Annotated[date, strawberry.argument(description="The UTC day.")],
        account_id: AccountIdArg = None,
        key_id: Annotated[
            strawberry.ID | None, strawberry.argument(description="Only this virtual key.")
        ] = None,
        key_ids: Annotated[
            list[strawberry.ID] | None,
            strawberry.argument(description="Only these virtual keys; keyId is added to them."),
        ] = None,
        agent_id: AgentArg = None,
        provider: Annotated[
            str | None, strawberry.argument(description="Only this provider.")
        ] = None,
        model: Annotated[str | None, strawberry.argument(description="Only this model.")] = None,
        admin: Annotated[
            bool | None,
            strawberry.argument(description="Platform-wide (platform admins only)."),
        ] = False,
        first: Annotated[int, strawberry.argument(description=f"Page size, 1 to {MAX_PAGE}.")] = 50,
        after: Annotated[
            str | None,
            strawberry.argument(description="Continue after this cursor (pageInfo.endCursor)."),
        ] = None,
    ) -> LlmRequestConnectionType:
        if not 1 <= first <= MAX_PAGE:
            raise bad_input("first", f"first must be between 1 and {MAX_PAGE}")
        if after is not None:
            try:
                decode_cursor(after)
            except ValueError:
                raise bad_input("after", "after is not a cursor of this log") from None
        wanted_keys = uuids([str(k) for k in key_ids], "keyIds") if key_ids is not None else None
        one_key = optional_uuid(key_id, "keyId")
        if one_key is not None:
            wanted_keys = (*(wanted_keys or ()), one_key)
        scope = await usage_query(
            info,
            UsageFilter(
                date_from=date,
                date_to=date,
                account_id=optional_uuid(account_id, "accountId"),
                agent_id=optional_uuid(agent_id, "agentId"),
                key_ids=wanted_keys,
                admin=bool(admin),
            ),
        )
        query = RequestLogQuery(
            day=date,
            account_ids=scope.account_ids,
            model=model,
            key_ids=scope.key_ids,
            provider=provider,
            agent_id=scope.agent_id,
        )
        page = await info.context.db.run(
            lambda conn: request_log(conn, query, first=first, after=after)
        )
        return LlmRequestConnectionType(page=page, query=query, after=after)
