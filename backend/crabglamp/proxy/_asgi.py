"""ASGI plumbing the proxy's endpoints share: a client that goes away, deadlines, whole replies.

The endpoints are plain ASGI callables rather than request/response functions: a stream is
passed through chunk by chunk, and a client that goes away is noticed while the upstream is
still working.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_T = TypeVar("_T")


class ClientGone(Exception):
    pass


async def until_disconnect(receive: Receive) -> None:
    with contextlib.suppress(Exception):  # a receive that fails means the client is gone too
        while (await receive())["type"] != "http.disconnect":
            pass


async def race(work: Coroutine[Any, Any, _T], gone: asyncio.Task[None]) -> _T:
    """Run `work` unless the client goes away first (then cancel it and raise ClientGone)."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    raise ClientGone


async def within(work: Coroutine[Any, Any, _T], seconds: float) -> _T:
    async with asyncio.timeout(seconds):
        return await work


async def send_whole(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    request_id: str,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    all_headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    if headers is not None:
        all_headers.extend(headers)
    elif request_id:
        all_headers.append((b"x-crabglamp-request-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})
