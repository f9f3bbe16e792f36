"""A real HTTP receiver on 127.0.0.1 for the alert and billing tests: records every request and
answers from a plan (e.g. fail the first two with 500)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(slots=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(slots=True)
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    # Statuses to answer, first to last; once used up, 200.
    plan: list[int] = field(default_factory=list)
    # What a refusal's body says, and where a 3xx points (its Location header).
    error_body: bytes = b'{"error": "planned"}'
    location: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.plan.pop(0) if self.plan else 200

    def ok(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            assert state is not None
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status = state.answer()
            with state.lock:
                state.requests.append(
                    Received(
                        self.path, {k.lower(): v for k, v in self.headers.items()}, body, status
                    )
                )
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            if 300 <= status < 400 and state.location:
                self.send_header("Location", state.location)
            self.end_headers()
            self.wfile.write(b'{"ok": true}' if status < 300 else state.error_body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # quiet tests

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
