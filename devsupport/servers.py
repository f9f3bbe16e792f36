"""Servers as processes of their own, for the tests and the benchmarks: a free port, and a
command started, waited for until it answers, and stopped.

Why here: tests/ and benchmarks/ both start servers, and benchmarks must not import from
tests/ (a folder of test modules, not a package). The product package (backend/crabglamp) must
not carry test-only code either. So this lives in `devsupport`, a folder of the repository that
is not installed: pytest finds it through `pythonpath` (pyproject.toml) and `python -m
benchmarks.*` through the working directory, the repository's root. It imports nothing of
crabglamp, so it does not care where the product's modules live.

    port = free_port()
    with running([sys.executable, "-m", "crabglamp.cli", "serve", "--port", str(port)],
                 port=port, log=tmp / "server.log", env=env, ready="/readyz") as server:
        httpx.get(f"{server.url}/api/usage")

`spawn` is the same without the `with`, for callers that stop, or kill -9, on their own time.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def uvicorn_app(
    port: int, *, workers: int = 1, python: Sequence[str] | None = None, access_log: bool = True
) -> list[str]:
    """The command that serves the product's ASGI app (`crabglamp.server:app`) under uvicorn on
    `port`; `python` is the interpreter's command (e.g. one that runs it at a fixed clock)."""
    command = [
        *(python or [sys.executable]),
        "-m",
        "uvicorn",
        "crabglamp.server:app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--log-level",
        "warning",
        # As `crabglamp serve` (crabglamp.cli.KEEP_ALIVE_SECONDS; a test keeps them equal).
        "--timeout-keep-alive",
        "75",
    ]
    if not access_log:
        command.append("--no-access-log")
    if workers != 1:
        command += ["--workers", str(workers)]
    return command


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


class ServerDidNotStart(RuntimeError):
    """The command exited, or did not answer within its deadline; the message ends with the
    tail of its log."""


@dataclass
class Spawned:
    """A started server: its process, port and log (stdout and stderr together)."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError as error:
            return f"(no log: {error})"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds. Idempotent."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown, no flush, nothing."""
        self.process.kill()
        self.process.wait()


def _answers(url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(url, timeout=2).status_code == 200
    return False


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
        return True
    return False


def spawn(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready: str | None = "/readyz",
    within: float = 60.0,
    append: bool = False,
) -> Spawned:
    """Start `command` (which must listen on `port` of 127.0.0.1) and return once it is ready:
    `ready`, a path, answers 200 (None: the port accepts a TCP connection). Its output goes to
    `log` (appended to with `append`, so that a restarted server keeps one log). If it exits
    first, or is not ready within `within` seconds, it is stopped and ServerDidNotStart raised.
    """
    with log.open("ab" if append else "wb") as sink:  # the child keeps its own descriptor
        process = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else dict(os.environ),
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Spawned(process, port, log)
    name = " ".join(command)
    probe = f"{server.url}{ready}" if ready is not None else None
    deadline = time.monotonic() + within
    while True:
        if process.poll() is not None:
            raise ServerDidNotStart(f"{name} exited ({process.returncode}):\n{server.tail()}")
        if _answers(probe) if probe else _accepts(port):
            return server
        if time.monotonic() > deadline:
            server.stop()
            what = probe or f"port {port}"
            raise ServerDidNotStart(f"{name}: {what} not ready in {within:g} s:\n{server.tail()}")
        time.sleep(0.1)


@contextlib.contextmanager
def running(
    command: Sequence[str],
    *,
    port: int,
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
    ready: str | None = "/readyz",
    within: float = 60.0,
    append: bool = False,
    stop_within: float = 15.0,
) -> Iterator[Spawned]:
    """`spawn`, stopped on leaving (SIGTERM, SIGKILL after `stop_within` seconds)."""
    server = spawn(
        command, port=port, log=log, env=env, cwd=cwd, ready=ready, within=within, append=append
    )
    try:
        yield server
    finally:
        server.stop(stop_within)
