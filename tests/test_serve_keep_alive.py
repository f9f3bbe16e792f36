"""`crabglamp serve` keeps an idle keep-alive connection open longer than clients' pools keep
theirs (cli.KEEP_ALIVE_SECONDS): a client that reuses one after an idle gap gets its answer,
rather than a reset because the server closed the connection just then."""

from __future__ import annotations

import http.client
import time
from pathlib import Path
from urllib.parse import urlsplit

from api_support import live_server
from crabglamp.cli import KEEP_ALIVE_SECONDS
from devsupport.servers import uvicorn_app

# Longer than uvicorn's default keep-alive timeout (5 s), with a margin for a slow machine.
IDLE_GAP_SECONDS = 6.5


def test_a_connection_reused_after_an_idle_gap_is_answered(tmp_path: Path) -> None:
    with live_server(tmp_path, seeded=False) as (base, _world):
        address = urlsplit(base)
        assert address.hostname is not None
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
        try:
            connection.request("GET", "/healthz")
            first = connection.getresponse()
            assert (first.status, first.read()) == (200, b'{"status":"ok"}')
            socket_before = connection.sock
            time.sleep(IDLE_GAP_SECONDS)
            # The same TCP connection (http.client would not reconnect on its own): a server
            # that closed it meanwhile makes this raise RemoteDisconnected.
            connection.request("GET", "/healthz")
            assert connection.sock is socket_before
            second = connection.getresponse()
            assert (second.status, second.read()) == (200, b'{"status":"ok"}')
        finally:
            connection.close()


def test_tests_and_benchmarks_serve_with_the_same_keep_alive() -> None:
    command = uvicorn_app(8000)
    flag = command.index("--timeout-keep-alive")
    assert command[flag + 1] == str(KEEP_ALIVE_SECONDS)
    assert KEEP_ALIVE_SECONDS > IDLE_GAP_SECONDS
