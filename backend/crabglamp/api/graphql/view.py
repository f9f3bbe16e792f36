"""/graphql over HTTP and WebSocket: authentication, and the GraphQL-over-HTTP media types.

Strawberry's view answers `application/json` only. A client that accepts
`application/graphql-response+json` gets that media type, and then a request error (a document
that does not parse or validate, variables that do not coerce) is a 400 without `data`, as the
GraphQL-over-HTTP specification asks; `application/json` clients keep the legacy 200.

Before GraphQL runs: a body (or a GET's query string) over MAX_BODY_BYTES is a 413, counted while
it arrives; a POST signed in by the session cookie must be same-origin JSON (api/csrf.py); a body
that is not a JSON object is a 400. Mutations never run on GET (Strawberry refuses them).

Over a WebSocket (`graphql-transport-ws` only: the protocol Strawberry and the `graphql-ws`
client speak) the socket is authenticated by its `connection_init`: a token in its payload
(`{"token": "..."}`), else the upgrade request's `Authorization` header or `__session` cookie,
verified exactly as an HTTP request's. A refusal closes the socket with 4403 and the error's
code as reason; a socket stays open only until its token expires (closed with 4401
"token_expired", and the client reconnects with a fresh token). Cross-origin upgrades are
refused by Strawberry's origin check, so a page elsewhere cannot use the visitor's cookie.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

import orjson
from cross_web import HTTPException, StarletteRequestAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter, GraphQL
from strawberry.http import GraphQLHTTPResponse
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import ConnectionInitMessage
from strawberry.types import ExecutionResult

from crabglamp.access import Caller
from crabglamp.api.auth import AuthError, auth_error_response, expires_at, presented_token
from crabglamp.api.csrf import JSON_MEDIA_TYPES, cookie_write_refusal
from crabglamp.api.dashboard import playground_response
from crabglamp.api.graphql.context import Context, SocketContext, make_context, make_socket_context
from crabglamp.api.graphql.schema import build_schema
from crabglamp.api.services import services
from crabglamp.settings import Settings
from crabglamp.usage.filter import CallerScope

GRAPHQL_RESPONSE_JSON: Final = "application/graphql-response+json"
APPLICATION_JSON: Final = "application/json"
# The largest request a client has reason to send: a document is at most 2,000 tokens
# (extensions/limits.py MAX_TOKENS), the dashboard's largest is under 2 KiB, and variables are
# ids, dates and a few names. 256 KiB is a hundred times that, and parses in about a millisecond.
MAX_BODY_BYTES: Final = 256 * 1024
_STATE_CONTEXT: Final = "graphql_context"
_STATE_SUB_RESPONSE: Final = "graphql_sub_response"
# graphql-transport-ws close codes: refused at connection_init (the protocol's recommendation),
# and the token behind an open socket expired.
CLOSE_REFUSED: Final = 4403
CLOSE_EXPIRED: Final = 4401


# A few lines over one header with one media type of interest: not worth python-mimeparse.
def response_media_type(accept: str | None) -> str:
    """The newer media type when the client accepts it (q > 0), else application/json."""
    for part in (accept or "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if media.lower() != GRAPHQL_RESPONSE_JSON:
            continue
        refused = any(
            p.replace(" ", "").lower() in {"q=0", "q=0.0", "q=0.00", "q=0.000"} for p in params
        )
        if not refused:
            return GRAPHQL_RESPONSE_JSON
    return APPLICATION_JSON


def _is_request_error(result: ExecutionResult) -> bool:
    """Parse, validation and coercion errors: nothing executed, so no error has a path."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


class BodyTooLarge(Exception):
    """The request's body (or a GET's query string) exceeds MAX_BODY_BYTES."""


class _LimitedRequestAdapter(StarletteRequestAdapter):
    """Strawberry reads the body through this: counted while it arrives, refused past the limit
    before anything of it is parsed (the Content-Length was checked before, when sent)."""

    async def get_body(self) -> bytes:
        body = bytearray()
        async for chunk in self._request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                raise BodyTooLarge
        return bytes(body)


def http_error(status: int, code: str, message: str, media_type: str) -> Response:
    """A refusal before GraphQL runs, in GraphQL's error shape (as Strawberry's own 400s)."""
    body = {"errors": [{"message": message, "extensions": {"code": code}}]}
    return Response(orjson.dumps(body), status_code=status, media_type=media_type)


def _too_large(media_type: str) -> Response:
    return http_error(
        413,
        "PAYLOAD_TOO_LARGE",
        f"the request is larger than the limit of {MAX_BODY_BYTES // 1024} KiB",
        media_type,
    )


class _TextFrames(ASGIWebSocketAdapter):
    """`encode_json` gives bytes (orjson); graphql-transport-ws messages are text frames."""

    async def send_json(self, message: Mapping[str, object]) -> None:
        encoded = self.view.encode_json(message)
        try:
            await self.ws.send_text(encoded.decode() if isinstance(encoded, bytes) else encoded)
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc

    @property
    def socket(self) -> WebSocket:
        return self.ws


class _AuthenticatedTransportWS(BaseGraphQLTransportWSHandler[SocketContext, None]):
    """graphql-transport-ws with our authentication at connection_init and a close at expiry."""

    _expiry: asyncio.Task[None] | None = None

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload")
        fresh = not (self.connection_init_received or self.connection_timed_out)
        if fresh and (payload is None or isinstance(payload, dict)):
            assert isinstance(self.websocket, _TextFrames)
            try:
                caller, expiry = _authenticate(self.websocket.socket, payload or {})
            except AuthError as exc:
                self.connection_init_received = True
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(code=CLOSE_REFUSED, reason=exc.code)
                return
            self.context.caller = caller
            self.context.scope = CallerScope(caller)
            self._expiry = asyncio.create_task(self._close_at(expiry))
        await super().handle_connection_init(message)

    async def _close_at(self, expiry: float) -> None:
        await asyncio.sleep(max(0.0, expiry - time.time()))
        with contextlib.suppress(Exception):  # the client may have gone at the same moment
            await self.websocket.close(code=CLOSE_EXPIRED, reason="token_expired")

    async def shutdown(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        await super().shutdown()


def _authenticate(socket: WebSocket, payload: Mapping[str, object]) -> tuple[Caller, float]:
    """The socket's caller and when its token expires: the payload's token first, else the
    upgrade request's header or cookie."""
    token = payload.get("token")
    if token is None:
        header = payload.get("Authorization", payload.get("authorization"))
        if isinstance(header, str):
            token = header.strip().removeprefix("Bearer ").strip()
    if token is not None and (not isinstance(token, str) or not token):
        raise AuthError("invalid_token", "connection_init's token must be a session token")
    chosen = token if isinstance(token, str) else presented_token(socket)
    caller = services(socket).authenticator.verify(chosen)
    return caller, expires_at(chosen)


class GraphQLView(GraphQL[Context, None]):
    request_adapter_class = _LimitedRequestAdapter
    websocket_adapter_class = _TextFrames  # type: ignore[assignment]
    graphql_transport_ws_handler_class = _AuthenticatedTransportWS  # type: ignore[assignment]

    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(production=settings.production),
            graphql_ide=None if settings.production else "graphiql",
            allow_queries_via_get=True,
            multipart_uploads_enabled=False,
            # The legacy `graphql-ws` protocol would need its own authentication: not served.
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            connection_init_wait_timeout=timedelta(seconds=10),
            max_subscriptions_per_connection=settings.live.max_per_connection,
        )
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            socket = WebSocket(scope, receive, send)
            try:
                await self.run(socket)
            finally:
                context: SocketContext | None = getattr(socket.state, _STATE_CONTEXT, None)
                if context is not None:
                    await context.db.close()
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        media_type = response_media_type(request.headers.get("accept"))
        response: Response
        try:
            if self._wants_ide(request):
                response = await self.render_graphql_ide(request)
            else:
                response = await self._refusal(request, media_type) or await self._serve(request)
        except AuthError as exc:
            response = auth_error_response(exc)
        except BodyTooLarge:
            response = _too_large(media_type)
        except HTTPException as exc:
            response = Response(
                json.dumps({"errors": [{"message": exc.reason}]}),
                status_code=exc.status_code,
                media_type=media_type,
            )
        finally:
            http_context: Context | None = getattr(request.state, _STATE_CONTEXT, None)
            if http_context is not None:
                await http_context.db.close()
        await response(scope, receive, send)

    async def _refusal(self, request: Request, media_type: str) -> Response | None:
        """What is refused from the headers alone, before the body is read."""
        if request.method == "POST":
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
                return _too_large(media_type)
            # Queries too: which operation a body holds is known only once it is parsed.
            refused = cookie_write_refusal(
                request, services(request).authenticator.public_origins, JSON_MEDIA_TYPES
            )
            if refused is not None:
                return http_error(refused.status, refused.code.upper(), refused.message, media_type)
        elif len(request.scope.get("query_string", b"")) > MAX_BODY_BYTES:
            return _too_large(media_type)
        return None

    async def _serve(self, request: Request) -> Response:
        # Verified before Strawberry sees the request: 401 is ours, not a GraphQL error.
        request.state.caller = services(request).authenticator.authenticate(request)
        return await self.run(request)

    async def render_graphql_ide(self, request: Any) -> Response:
        # Our own build of GraphiQL (frontend/playground.html), not Strawberry's page, which
        # loads React and GraphiQL from a CDN: this one works offline and under our CSP.
        return playground_response(self.settings)

    def _wants_ide(self, request: Request) -> bool:
        # The GraphiQL page is static; the queries it sends are authenticated like any other.
        accept = request.headers.get("accept", "")
        return (
            self.graphql_ide is not None
            and request.method == "GET"
            and "query" not in request.query_params
            and ("text/html" in accept or "*/*" in accept)
        )

    async def get_context(self, request: Any, response: Any) -> Context:
        svc = services(request)
        if isinstance(request, WebSocket):
            socket_context = make_socket_context(svc.engine, self.settings, svc.changes)
            request.state.graphql_context = socket_context
            return socket_context
        context = make_context(
            request, svc.engine, request.state.caller, self.settings, reads=svc.reads
        )
        request.state.graphql_context = context
        return context

    async def get_sub_response(self, request: Any) -> Response:
        sub_response = await super().get_sub_response(request)
        sub_response.media_type = response_media_type(request.headers.get("accept"))
        request.state.graphql_sub_response = sub_response
        return sub_response

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        data = await super().process_result(request, result)
        if _is_request_error(result):
            # A request error has no data entry at all (GraphQL over HTTP, 7.1.2).
            data.pop("data", None)
            sub_response: Response = getattr(request.state, _STATE_SUB_RESPONSE)
            if sub_response.media_type == GRAPHQL_RESPONSE_JSON:
                sub_response.status_code = 400
        return data

    def decode_json(self, data: str | bytes) -> object:
        # orjson refuses what json.loads lets through to a 500 or to the database: nesting
        # deeper than 1,024 (json.loads: RecursionError), lone surrogates, NaN and Infinity.
        # Its JSONDecodeError is json's, which Strawberry turns into a 400.
        value = orjson.loads(data)
        # Bytes are the request's body (str a GET's `variables` or `extensions`, which
        # Strawberry checks itself): a GraphQL request is an object (a list would be a batch).
        if isinstance(data, bytes) and not isinstance(value, dict | list):
            raise HTTPException(400, "The request body must be a JSON object.")
        return value

    def encode_json(self, data: object) -> bytes:
        # Strawberry's json.dumps(separators=(",", ":")) escapes non-ASCII as \\uXXXX; orjson
        # writes it as UTF-8, which JSON over HTTP is (RFC 8259, 8.1): the same JSON value.
        return orjson.dumps(data)

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        response = Response(
            self.encode_json(response_data),
            status_code=sub_response.status_code or 200,
            media_type=sub_response.media_type or APPLICATION_JSON,
        )
        for name, value in sub_response.headers.items():
            if name.lower() not in {"content-type", "content-length"}:
                response.headers.append(name, value)
        return response
