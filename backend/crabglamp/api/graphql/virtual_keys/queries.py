"""`virtualKeys(accountId:, provider:)` (CONTRACTS.md §3.1)."""

from __future__ import annotations

import strawberry

from crabglamp.api.graphql.arguments import AccountIdArg, ProviderArg
from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.permissions import account_scope, optional_uuid
from crabglamp.api.graphql.virtual_keys.types import VirtualKeyType
from crabglamp.models import VirtualKey


def with_provider(keys: list[VirtualKey], provider: str | None) -> list[VirtualKeyType]:
    return [VirtualKeyType(key=k) for k in keys if provider is None or k.provider == provider]


@strawberry.type
class VirtualKeyQueries:
    @strawberry.field(
        description="The account's virtual keys (revoked ones included, see status), by name."
    )
    async def virtual_keys(
        self,
        info: Info,
        account_id: AccountIdArg = None,
        provider: ProviderArg = None,
    ) -> list[VirtualKeyType]:
        scope = await account_scope(info, optional_uuid(account_id, "accountId"))
        if scope is None:  # only admin=True gives None; this field never asks for it
            raise AssertionError("virtualKeys is never platform-wide")
        keys = [
            k
            for account in await info.context.loaders.keys_of_account.load_many(scope)
            for k in account
        ]
        return with_provider(keys, provider)
