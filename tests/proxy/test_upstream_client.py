"""The proxy's HTTP/1.1 transport to its upstreams (upstream_client.py): answers whole and in
pieces, connections kept alive, and a connection the upstream closed never costs a request."""

from __future__ import annotations

import asyncio
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from crabglamp.proxy.upstream_client import LeanTransport, UpstreamClient, read_whole

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return await reader.readexactly(length)


@pytest.fixture
async def upstream() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"

    yield start
    for server in servers:
        server.close()


def _client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(2, connect=2))


async def test_answers_come_whole_on_one_kept_alive_connection(upstream) -> None:  # type: ignore[no-untyped-def]
    connections = 0

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                body = await _read_request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
        writer.close()

    url = await upstream(echo)
    async with _client() as client:
        for n in range(5):
            answer = await client.post(url + "/v1/x", content=f"request {n}".encode())
            assert (answer.status_code, answer.content) == (200, f"request {n}".encode())
    assert connections == 1


async def test_a_streamed_answer_arrives_piece_by_piece(upstream) -> None:  # type: ignore[no-untyped-def]
    go_on = asyncio.Event()

    async def chunks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await writer.drain()
        await go_on.wait()
        writer.write(b"6\r\nsecond\r\n0\r\n\r\n")
        await writer.drain()
        writer.close()

    url = await upstream(chunks)
    async with _client() as client, client.stream("POST", url, content=b"{}") as answer:
        pieces = answer.aiter_raw()
        assert await pieces.__anext__() == b"first"  # before the rest was even sent
        go_on.set()
        assert [piece async for piece in pieces] == [b"second"]


async def test_a_connection_the_upstream_closed_is_not_reused(upstream) -> None:  # type: ignore[no-untyped-def]
    async def once_per_connection(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        body = await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # keep-alive announced, and then the idle connection closed

    url = await upstream(once_per_connection)
    async with _client() as client:
        for n in range(3):
            await asyncio.sleep(0.05)
            answer = await client.post(url, content=f"{n}".encode())
            assert answer.content == f"{n}".encode()


async def test_an_upstream_that_stops_answering_times_out(upstream) -> None:  # type: ignore[no-untyped-def]
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        try:
            await asyncio.sleep(10)
        finally:
            writer.close()

    url = await upstream(silent)
    client = httpx.AsyncClient(transport=LeanTransport(), timeout=httpx.Timeout(0.2))
    async with client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post(url, content=b"{}")


async def test_an_upstream_that_is_not_there_cannot_be_reached() -> None:
    async with _client() as client:
        with pytest.raises(httpx.ConnectError):
            await client.post("http://127.0.0.1:9/", content=b"{}")


async def test_the_proxy_client_never_sends_one_answers_cookie_with_a_later_request(  # type: ignore[no-untyped-def]
    upstream,
) -> None:
    heads: list[bytes] = []

    async def sets_a_cookie(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            heads.append(head.lower())
            writer.write(
                b"HTTP/1.1 200 OK\r\nset-cookie: session=customer-a; Path=/\r\n"
                b"content-length: 2\r\n\r\nok"
            )
            await writer.drain()
        writer.close()

    url = await upstream(sets_a_cookie)
    client = UpstreamClient(timeout_seconds=2, connect_seconds=2)
    try:
        for secret in ("customer-a", "customer-b"):
            request = client.post(url + "/v1/chat/completions", {"authorization": secret}, b"{}")
            response = await client.send(request)
            assert (response.status_code, await response.aread()) == (200, b"ok")
            await response.aclose()
    finally:
        await client.aclose()
    assert len(heads) == 2
    assert all(b"cookie:" not in head.replace(b"set-cookie:", b"") for head in heads)
    assert b"authorization: customer-b" in heads[1]


async def test_the_proxy_client_gives_up_on_a_silent_upstream_after_its_read_timeout(  # type: ignore[no-untyped-def]
    upstream,
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the request, never answered
        await reader.read()  # until the client gives up and hangs up
        writer.close()

    url = await upstream(silent)
    client = UpstreamClient(timeout_seconds=0.2, connect_seconds=2)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await client.send(client.post(url + "/v1/embeddings", {}, b"{}"))
        assert asyncio.get_running_loop().time() - started < 2
    finally:
        await client.aclose()


async def test_a_whole_answer_is_read_in_all_its_pieces_and_decoded_if_coded(  # type: ignore[no-untyped-def]
    upstream,
) -> None:
    """read_whole: a chunked answer joined from its pieces, one kept-alive connection on, and
    an upstream that gzips although asked for `identity` still decoded."""
    coded = gzip.compress(b'{"usage": {}}')
    answers = [
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nfirst\r\n1\r\n \r\n6\r\nsecond\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: %d\r\n\r\n%s"
        % (len(coded), coded),
    ]

    async def answer_in_turn(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for answer in answers:
            await _read_request(reader)
            writer.write(answer)
            await writer.drain()
        writer.close()

    url = await upstream(answer_in_turn)
    client = UpstreamClient(timeout_seconds=2, connect_seconds=2)
    try:
        bodies = []
        for _ in answers:
            response = await client.send(client.post(url + "/v1/chat/completions", {}, b"{}"))
            bodies.append(await read_whole(response))
            await response.aclose()
    finally:
        await client.aclose()
    assert bodies == [b"first second", b'{"usage": {}}']
