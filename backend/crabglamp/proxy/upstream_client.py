"""A lean HTTP/1.1 keep-alive transport for httpx: the proxy's requests to its upstreams.

Profiled under load (`py-spy`, 64 connections), httpx's default transport (httpcore) took ~40 %
of the proxy's CPU: every request walks the whole connection pool, polling each connection's
socket to see whether it expired, so the cost grows with the connections in use; then h11's
state machine on both directions. The proxy needs little of that: POST a body, read a status,
headers and a body (whole, or streamed as it arrives), keep the connection for the next request.

This transport does that on an asyncio protocol with httptools' parser (the one uvicorn uses),
and keeps idle connections per origin, last in first out (a connection the server closes is
dropped as soon as the loop hears it). Callers keep httpx's requests, responses, decoding and
exceptions (`httpx.ConnectTimeout`, `ReadTimeout`, `ConnectError`, `RemoteProtocolError`), but
not its client: `UpstreamClient` hands each request to the transport itself.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from typing import cast

import httptools
import httpx

# Past this much unread body, stop reading from the socket until the reader catches up.
_HIGH_WATER = 1 << 20


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._paused = False
        self._loop = asyncio.get_running_loop()
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head: asyncio.Future[None] = self._loop.create_future()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.received = False
        self.keep_alive = False
        self.error: Exception | None = None
        self._wake: asyncio.Future[None] | None = None

    # The protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(httpx.RemoteProtocolError(f"invalid response from the upstream: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.complete:
            if self.head.done() and not self._framed():
                # A body delimited by the end of the connection: it ended.
                self.on_message_complete()
            else:
                self._fail(httpx.RemoteProtocolError("the upstream closed the connection"))

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self.keep_alive = self._parser.should_keep_alive()
        if not self.head.done():
            self.head.set_result(None)

    def on_body(self, body: bytes) -> None:
        self.chunks.append(bytes(body))
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and self.transport is not None and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._notify()

    def on_message_complete(self) -> None:
        self.complete = True
        self._notify()

    # For the transport

    def _framed(self) -> bool:
        names = {name.lower() for name, _ in self.headers}
        return b"content-length" in names or b"transfer-encoding" in names

    def _notify(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def _fail(self, error: Exception) -> None:
        self.error = error
        if not self.head.done():
            self.head.set_exception(error)
            self.head.exception()  # retrieved here: the waiter may be gone already
        self._notify()

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._begin()
        self.transport.write(data)

    async def next_chunk(self, read_seconds: float | None) -> bytes | None:
        """The next piece of the body, or None at its end."""
        while not self.chunks:
            if self.complete:
                return None
            if self.error is not None:
                raise self.error
            self._wake = self._loop.create_future()
            try:
                async with asyncio.timeout(read_seconds):
                    await self._wake
            except TimeoutError:
                raise httpx.ReadTimeout("the upstream stopped sending") from None
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self._paused and self.buffered < _HIGH_WATER // 2 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return (
            self.complete
            and self.keep_alive
            and not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
        )

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


_Origin = tuple[str, str, int]


class _Body(httpx.AsyncByteStream):
    def __init__(
        self, transport: LeanTransport, origin: _Origin, conn: _Connection, timeout: float | None
    ) -> None:
        self._transport, self._origin, self._conn, self._timeout = transport, origin, conn, timeout
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while (chunk := await self._conn.next_chunk(self._timeout)) is not None:
                yield chunk
        except BaseException:
            self._conn.close()
            raise

    async def whole(self) -> bytes:
        parts = [chunk async for chunk in self]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def aclose(self) -> None:
        if self._done:
            return
        self._done = True
        if self._conn.reusable():
            self._transport.idle(self._origin, self._conn)
        else:
            self._conn.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """Timeouts come with each request, from the httpx client's `timeout` (connect, read)."""

    def __init__(self, max_idle_per_origin: int = 500) -> None:
        self.max_idle_per_origin = max_idle_per_origin
        self._idle: dict[_Origin, list[_Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    def idle(self, origin: _Origin, conn: _Connection) -> None:
        waiting = self._idle.setdefault(origin, [])
        if len(waiting) < self.max_idle_per_origin:
            waiting.append(conn)
        else:
            conn.close()

    def _reuse(self, origin: _Origin) -> _Connection | None:
        waiting = self._idle.get(origin)
        while waiting:
            conn = waiting.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn
        return None

    async def _connect(self, origin: _Origin, connect_seconds: float | None) -> _Connection:
        scheme, host, port = origin
        context = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            context = self._tls
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(connect_seconds):
                _, conn = await loop.create_connection(
                    _Connection, host, port, ssl=context, server_hostname=host if context else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {exc}") from None
        return conn

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        timeouts = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        scheme = url.scheme
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        body = request.content if isinstance(request.stream, httpx.ByteStream) else b""
        if not body and not isinstance(request.stream, httpx.ByteStream):
            body = await request.aread()
        head = [request.method.encode() + b" " + url.raw_path + b" HTTP/1.1\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in request.headers.raw]
        data = b"".join(head) + b"\r\n" + body
        conn = self._reuse(origin)
        for attempt in (0, 1):
            reused = conn is not None
            if conn is None:
                conn = await self._connect(origin, timeouts.get("connect"))
            try:
                conn.send(data)
                # Not shielded: a wait given up closes the connection below, and the protocol
                # never completes a future that is done already.
                async with asyncio.timeout(read_timeout):
                    await conn.head
            except httpx.RemoteProtocolError:
                conn.close()
                # A kept-alive connection the upstream closed just as it was reused, before
                # answering a single byte: it never read the request, so send it again, once.
                if reused and not conn.received and attempt == 0:
                    conn = None
                    continue
                raise
            except TimeoutError:
                conn.close()
                raise httpx.ReadTimeout("the upstream did not answer in time") from None
            except BaseException:
                conn.close()  # cancelled mid-request: the connection's state is unknown
                raise
            break
        assert conn is not None
        return httpx.Response(
            conn.status,
            headers=conn.headers,
            stream=_Body(self, origin, conn, read_timeout),
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        for waiting in self._idle.values():
            for conn in waiting:
                conn.close()
        self._idle.clear()


async def read_whole(response: httpx.Response) -> bytes:
    """The response's body, whole. From this transport, with no content coding (the proxy asks
    for `identity`), it is the chunks as they came: httpx's decoding and chunking layers around
    them cost ~19 µs a response (26 µs against 6.5 µs with them, measured). Any other response
    is read by httpx, decoded."""
    stream = response.stream
    if isinstance(stream, _Body) and "content-encoding" not in response.headers:
        return await stream.whole()
    return await response.aread()


class UpstreamClient:
    """POSTs to the upstreams on `LeanTransport`, without httpx's client in front of it.

    In a profile under load the client took about a sixth of the proxy's busy time (building
    each request from its defaults, auth and redirect flows, wrapping the body) for nothing the
    proxy needs, and its cookie jar kept what one customer's upstream answer set, to send it
    with every later request of any customer to that upstream. Here a request is the URL
    (parsed once per upstream path), the headers given and the body; the timeouts travel in its
    extensions, as httpx's client sends them, and the transport reads them there."""

    def __init__(
        self, timeout_seconds: float, connect_seconds: float, max_idle_per_origin: int = 500
    ) -> None:
        self.transport = LeanTransport(max_idle_per_origin=max_idle_per_origin)
        self._timeouts = {
            "connect": connect_seconds,
            "read": timeout_seconds,
            "write": timeout_seconds,
            "pool": timeout_seconds,
        }
        self._urls: dict[str, httpx.URL] = {}

    def post(self, url: str, headers: Mapping[str, str], content: bytes) -> httpx.Request:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(url)
        return httpx.Request(
            "POST", parsed, headers=headers, content=content, extensions={"timeout": self._timeouts}
        )

    async def send(self, request: httpx.Request) -> httpx.Response:
        """The upstream's status and headers; the body is read from the response as it comes."""
        response = await self.transport.handle_async_request(request)
        response.request = request
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()
