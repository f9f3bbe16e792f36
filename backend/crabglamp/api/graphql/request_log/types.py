"""The per-request log as a Relay-style connection (edges, node, pageInfo) with keyset cursors."""

from __future__ import annotations

from datetime import datetime

import strawberry

from crabglamp.api.graphql.context import Info
from crabglamp.api.graphql.scalars import BigInt
from crabglamp.money import micros_to_cents
from crabglamp.usage.request_log import LoggedRequest, RequestLogQuery, RequestPage, encode_cursor


@strawberry.type(name="LlmRequest", description="One LLM request through the proxy.")
class LlmRequestType:
    request: strawberry.Private[LoggedRequest]

    @strawberry.field(description="The event id.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.request.id)

    @strawberry.field(description="When it was made (UTC).")
    def ts(self) -> datetime:
        return self.request.ts

    @strawberry.field(description="The virtual key it went through.")
    def key_id(self) -> strawberry.ID:
        return strawberry.ID(str(self.request.key_id))

    @strawberry.field(description="The name of that key.")
    async def key_name(self, info: Info) -> str | None:
        key = await info.context.loaders.key.load(self.request.key_id)
        return None if key is None else key.name

    @strawberry.field(description="The agent that made it, if any.")
    def agent_id(self) -> strawberry.ID | None:
        agent = self.request.agent_id
        return None if agent is None else strawberry.ID(str(agent))

    @strawberry.field(description="The provider, e.g. openai.")
    def provider(self) -> str:
        return self.request.provider

    @strawberry.field(description="The model, e.g. gpt-4o-mini.")
    def model(self) -> str:
        return self.request.model

    @strawberry.field(description="Input tokens, all of them.")
    def input_tokens(self) -> BigInt:
        return BigInt(self.request.input_tokens)

    @strawberry.field(description="Output tokens, all of them.")
    def output_tokens(self) -> BigInt:
        return BigInt(self.request.output_tokens)

    @strawberry.field(description="Of the input tokens: read from the prompt cache.")
    def cached_input_tokens(self) -> BigInt:
        return BigInt(self.request.cached_input_tokens)

    @strawberry.field(description="Of the input tokens: written to a 5-minute prompt cache.")
    def cache_write_5m_tokens(self) -> BigInt:
        return BigInt(self.request.cache_write_5m_tokens)

    @strawberry.field(description="Of the input tokens: written to a 1-hour prompt cache.")
    def cache_write_1h_tokens(self) -> BigInt:
        return BigInt(self.request.cache_write_1h_tokens)

    @strawberry.field(description="Of the output tokens: reasoning.")
    def reasoning_tokens(self) -> BigInt:
        return BigInt(self.request.reasoning_tokens)

    @strawberry.field(description="Of the input tokens: audio.")
    def audio_input_tokens(self) -> BigInt:
        return BigInt(self.request.audio_input_tokens)

    @strawberry.field(description="Of the output tokens: audio.")
    def audio_output_tokens(self) -> BigInt:
        return BigInt(self.request.audio_output_tokens)

    @strawberry.field(description="What prompt caching saved on it, at the catalog's prices.")
    def cache_saved_cents(self) -> float:
        return micros_to_cents(self.request.cache_saved_micros)

    @strawberry.field(
        description="The service tier the provider reported (default, flex, priority, batch)."
    )
    def service_tier(self) -> str | None:
        return self.request.service_tier

    @strawberry.field(
        description="True when the provider reported no usage (a stream cut short) and the "
        "tokens are the proxy's estimate from what passed through."
    )
    def estimated(self) -> bool:
        return self.request.estimated

    @strawberry.field(description="Its cost.")
    def cost_cents(self) -> float:
        return micros_to_cents(self.request.cost_micros)

    @strawberry.field(description="ok, or error (an error costs nothing).")
    def status(self) -> str:
        return self.request.status


@strawberry.type(name="LlmRequestEdge", description="A request and its cursor.")
class LlmRequestEdgeType:
    node: LlmRequestType = strawberry.field(description="The request.")
    cursor: str = strawberry.field(description="Pass as `after` to continue after this request.")


@strawberry.type(name="PageInfo", description="Where a page of a connection stands.")
class PageInfoType:
    has_next_page: bool = strawberry.field(description="Whether more items follow.")
    has_previous_page: bool = strawberry.field(
        description="Whether items precede this page (it was asked for `after` a cursor)."
    )
    start_cursor: str | None = strawberry.field(description="The cursor of the first item.")
    end_cursor: str | None = strawberry.field(
        description="The cursor of the last item; pass it as `after` for the next page."
    )


@strawberry.type(
    name="LlmRequestConnection",
    description="A page of one day's requests (oldest first), with the count and total of "
    "all the day's requests that match.",
)
class LlmRequestConnectionType:
    page: strawberry.Private[RequestPage]
    query: strawberry.Private[RequestLogQuery]
    after: strawberry.Private[str | None]

    @strawberry.field(description="The requests of this page.")
    def edges(self) -> list[LlmRequestEdgeType]:
        return [
            LlmRequestEdgeType(node=LlmRequestType(request=r), cursor=encode_cursor(r.ts, r.id))
            for r in self.page.requests
        ]

    @strawberry.field(description="Where this page stands.")
    def page_info(self) -> PageInfoType:
        requests = self.page.requests
        return PageInfoType(
            has_next_page=self.page.has_next_page,
            has_previous_page=self.after is not None,
            start_cursor=encode_cursor(requests[0].ts, requests[0].id) if requests else None,
            end_cursor=self.page.end_cursor,
        )

    @strawberry.field(description="How many requests match, over all pages (the bar's count).")
    async def request_count(self, info: Info) -> BigInt:
        summary = await info.context.loaders.request_summary.load(self.query)
        return BigInt(summary.request_count)

    @strawberry.field(description="What the matching requests cost, over all pages (the bar).")
    async def total_cents(self, info: Info) -> float:
        summary = await info.context.loaders.request_summary.load(self.query)
        return micros_to_cents(summary.total_micros)

    @strawberry.field(description="Their input tokens read from the prompt cache, over all pages.")
    async def cached_input_tokens(self, info: Info) -> BigInt:
        summary = await info.context.loaders.request_summary.load(self.query)
        return BigInt(summary.cached_input_tokens)

    @strawberry.field(description="What prompt caching saved on them, over all pages.")
    async def cache_saved_cents(self, info: Info) -> float:
        summary = await info.context.loaders.request_summary.load(self.query)
        return micros_to_cents(summary.cache_saved_micros)
