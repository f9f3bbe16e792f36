"""Live updates in tests: servers on a test's database, and a graphql-transport-ws client.

The client is the `websockets` package speaking the protocol by hand (a few messages), so that
a test sees exactly what a browser's `graphql-ws` client would: the ack, each `next`, the close
code and reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from api_support import AZP, ISSUER, public_pem
from devsupport.servers import Spawned, free_port, running

SUBPROTOCOL = "graphql-transport-ws"
USAGE_CHANGED = """
subscription Live($accountId: ID, $admin: Boolean! = false) {
  usageChanged(accountId: $accountId, admin: $admin) { accountId kinds }
}
"""
# Long enough for a loaded 2-core machine; a test waits for what it expects, never for a time.
PATIENCE = 60.0


def server_env(db_url: str, **extra: str) -> dict[str, str]:
    """A server that verifies the tokens of api_support.token(), on `db_url`."""
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CLERK_JWT_KEY": public_pem(),
        "CLERK_ISSUER": ISSUER,
        "CLERK_AUTHORIZED_PARTIES": AZP,
        "CRABGLAMP_PRODUCTION": "",
        # Anomaly detection would write (and announce) on its own schedule.
        "CRABGLAMP_BACKGROUND": "0",
    }
    env.update(extra)
    return env


@contextlib.contextmanager
def serving(
    db_url: str, directory: Path, workers: int = 1, name: str = "server", **extra: str
) -> Iterator[Spawned]:
    """`crabglamp serve --workers N` on the test's (migrated, seeded) database."""
    port = free_port()
    command = [sys.executable, "-m", "crabglamp.cli", "serve", "--port", str(port)]
    command += ["--workers", str(workers)]
    with running(
        command,
        port=port,
        log=directory / f"{name}.log",
        env=server_env(db_url, **extra),
        cwd=directory,
        within=60,
    ) as server:
        yield server


@dataclass
class Refused:
    code: int
    reason: str


@dataclass
class LiveClient:
    socket: ClientConnection
    received: list[dict[str, Any]] = field(default_factory=list)

    async def subscribe(self, variables: dict[str, Any] | None = None, id: str = "1") -> None:
        await self.socket.send(
            json.dumps(
                {
                    "id": id,
                    "type": "subscribe",
                    "payload": {"query": USAGE_CHANGED, "variables": variables or {}},
                }
            )
        )

    async def message(self, within: float = PATIENCE) -> dict[str, Any]:
        """The next message other than a ping."""
        while True:
            raw = await asyncio.wait_for(self.socket.recv(), within)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] == "ping":
                await self.socket.send(json.dumps({"type": "pong"}))
                continue
            self.received.append(message)
            return message

    async def change(self, within: float = PATIENCE) -> dict[str, Any]:
        """The next `usageChanged` a subscription was told."""
        message = await self.message(within)
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        change: dict[str, Any] = message["payload"]["data"]["usageChanged"]
        return change

    async def change_or_error(self, within: float = PATIENCE) -> dict[str, Any] | None:
        """The next `usageChanged`, or None when the subscription was refused."""
        message = await self.message(within)
        if message["type"] == "error" or message["payload"].get("errors"):
            return None
        change: dict[str, Any] = message["payload"]["data"]["usageChanged"]
        return change

    async def closed(self, within: float = PATIENCE) -> Refused:
        """Wait for the server to close the socket; its code and reason."""
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(self.socket.recv(), within)
        assert self.socket.close_code is not None
        return Refused(self.socket.close_code, self.socket.close_reason or "")


def ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://", 1) + "/graphql"


@contextlib.asynccontextmanager
async def live_socket(
    base_url: str,
    init: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> AsyncIterator[LiveClient]:
    """An open socket that sent `connection_init` (with `init` as payload); not yet acked."""
    async with connect(
        ws_url(base_url),
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers=headers or {},
        open_timeout=PATIENCE,
    ) as socket:
        client = LiveClient(socket)
        await socket.send(json.dumps({"type": "connection_init", "payload": init or {}}))
        yield client


@contextlib.asynccontextmanager
async def subscribed(
    base_url: str, token: str, variables: dict[str, Any] | None = None
) -> AsyncIterator[LiveClient]:
    """An acknowledged socket with one `usageChanged` subscription running."""
    async with live_socket(base_url, {"token": token}) as client:
        ack = await client.message()
        assert ack["type"] == "connection_ack", ack
        await client.subscribe(variables)
        # The first message (no kinds) says the server listens: nothing after it is missed.
        first = await client.change()
        assert first["kinds"] == [], first
        yield client
