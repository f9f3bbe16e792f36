"""The schema: every domain's root fields composed into one Query (and Mutation).

The fixed root fields of CONTRACTS.md §3.1 live in their domains (usage, virtual_keys, anomalies,
invoice); accounts and the request log extend them. Mutations are registered in MUTATIONS.
"""

from __future__ import annotations

import re
import sys
from functools import partial
from pathlib import Path
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, MaskErrors
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types

from crabglamp.api.graphql.accounts.queries import AccountQueries
from crabglamp.api.graphql.alerts.mutations import AlertMutations
from crabglamp.api.graphql.alerts.queries import AlertQueries
from crabglamp.api.graphql.anomalies.mutations import AnomalyMutations
from crabglamp.api.graphql.anomalies.queries import AnomalyQueries
from crabglamp.api.graphql.execution import PlainRowsExecutor
from crabglamp.api.graphql.extensions.limits import limit_extensions
from crabglamp.api.graphql.invoice.queries import InvoiceQueries
from crabglamp.api.graphql.live.subscriptions import LiveSubscriptions
from crabglamp.api.graphql.permissions import is_expected
from crabglamp.api.graphql.request_log.queries import RequestLogQueries
from crabglamp.api.graphql.scalars import SCALARS
from crabglamp.api.graphql.usage.queries import UsageQueries
from crabglamp.api.graphql.viewer.queries import ViewerQueries
from crabglamp.api.graphql.virtual_keys.mutations import VirtualKeyMutations
from crabglamp.api.graphql.virtual_keys.queries import VirtualKeyQueries

QUERIES: tuple[type, ...] = (
    UsageQueries,
    VirtualKeyQueries,
    AnomalyQueries,
    InvoiceQueries,
    AccountQueries,
    RequestLogQueries,
    AlertQueries,
    ViewerQueries,
)
# The key lifecycle (virtual_keys/mutations.py), alert endpoints (alerts/mutations.py) and the
# state of anomalies (anomalies/mutations.py).
MUTATIONS: tuple[type, ...] = (VirtualKeyMutations, AlertMutations, AnomalyMutations)
# Live updates over WebSocket (live/subscriptions.py).
SUBSCRIPTIONS: tuple[type, ...] = (LiveSubscriptions,)

Query = merge_types("Query", QUERIES)
Query.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Usage of the accounts the caller may read: spend, keys, anomalies, invoices."
)
Mutation = merge_types("Mutation", MUTATIONS) if MUTATIONS else None
if Mutation is not None:
    Mutation.__strawberry_definition__.description = (  # type: ignore[attr-defined]
        "Virtual keys: create, rotate, revoke, suspend, and their spend caps and leak policies; "
        "alert endpoints; acknowledging and dismissing anomalies."
    )
Subscription = merge_types("Subscription", SUBSCRIPTIONS)
Subscription.__strawberry_definition__.description = (  # type: ignore[attr-defined]
    "Live updates: what changed, so that a page re-reads only that."
)


# graphql-core's "Did you mean 'accounts' or 'account'?" (fields, arguments, types, enum values,
# input fields): it spells out the schema that production keeps to itself (no introspection).
# Its form (graphql/pyutils/did_you_mean.py): " Did you mean [the enum value ]'a', 'b', or 'c'?",
# at the end of a message or before "Found: …"; names never hold a quote.
_SUGGESTION = re.compile(r" Did you mean (?:the enum value )?'[^']*'(?:,? (?:or )?'[^']*')*\?")


def without_suggestion(message: str) -> str:
    return _SUGGESTION.sub("", message)


class Schema(strawberry.Schema):
    # Production: errors name what is wrong, never what exists instead (see _SUGGESTION).
    hide_suggestions = False

    def process_errors(self, errors: list[GraphQLError], execution_context: Any = None) -> None:
        if self.hide_suggestions:
            # Strawberry calls this before it formats the result: the answer sees the change.
            for error in errors:
                error.message = without_suggestion(error.message)
        # Log bugs only: a refused or malformed request is the caller's business, not ours.
        unexpected = [error for error in errors if not is_expected(error)]
        if unexpected:
            super().process_errors(unexpected, execution_context)


def build_schema(production: bool = False) -> Schema:
    """Development and production serve the same SDL; production hides and masks more."""
    extensions: list[Any] = limit_extensions()
    if production:
        extensions += [DisableIntrospection, partial(MaskErrors, should_mask_error=_should_mask)]
    built = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        # Lists of plain rows answered directly (execution.py); none of these extensions
        # hooks `resolve`, which would turn that off.
        execution_context_class=PlainRowsExecutor,
        # Operation batching stays off (the default): one operation per request.
        config=StrawberryConfig(scalar_map=SCALARS),
    )
    built.hide_suggestions = production
    return built


def _should_mask(error: Any) -> bool:
    return not is_expected(error)


schema = build_schema()


def sdl() -> str:
    """The SDL that `schema.graphql` at the root holds (`just schema` writes it)."""
    return schema.as_str() + "\n"


def write_sdl(output: str) -> None:
    """Write the SDL to a file (whole or not at all), or to standard output for "-"."""
    text = sdl()
    if output == "-":
        sys.stdout.write(text)
        return
    target = Path(output)
    partial = target.with_name(f".{target.name}.tmp")
    partial.write_text(text, encoding="utf-8")
    partial.replace(target)
