"""P4 and P5 (CONTRACTS.md §7.1): what the metering proxy adds to a request, and how soon it is in usage.

    python -m benchmarks.proxy_bench                         # both engines, 1 and 2 workers
    python -m benchmarks.proxy_bench --engines sqlite --workers 1,2,4 --seconds 10
    just bench-proxy

P4 runs the LOCAL FAKE upstream (`crabglamp fake-upstream`) and the app (`uvicorn --workers N`)
as processes of their own, on a fresh database, with a capped key. The same chat completion is
sent directly to the fake and through the proxy, alternately on one keep-alive connection each:
the difference of the latency percentiles is what the proxy adds (authentication, the atomic
reservation, forwarding, the durable group-committed event with its settlement). Throughput is
then measured with many connections, directly and through the proxy. The load generator is a
minimal HTTP/1.1 client, so that it costs little of the two cores everybody shares.

P5 sends requests through the proxy one at a time and, as soon as each response is complete,
asks `GET /api/usage` (with a development session token) until the request is counted: the time
from the response to the first answer that counts it.

Both plug into `just bench` too (registered as p4-proxy-overhead and p5-proxy-freshness).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks.dataset import BENCH_DIR, fresh_path, prepare_dir
from benchmarks.registry import Context, Result, benchmark, percentile
from crabglamp.db import make_engine, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.keys import CreatedKey, create_key
from crabglamp.migrate import upgrade
from crabglamp.models import Account
from devsupport.servers import Spawned, free_port, running

REPO = Path(__file__).resolve().parents[1]
MODEL = "gpt-4o-mini"
OWNER = "user_bench_owner"
ENGINES = ("sqlite", "postgres")


# A minimal keep-alive HTTP/1.1 client: the load generator must not be the bottleneck


class Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = None
        chunked = False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if length is not None:
            return status, await self.reader.readexactly(length)
        if not chunked:
            raise RuntimeError("a response without length")
        body = bytearray()
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
            body += await self.reader.readexactly(size + 2)
            if size == 0:
                return status, bytes(body[:-2])
            del body[-2:]


def _request(
    method: str, path: str, host: str, headers: dict[str, str], body: bytes = b""
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _chat(host: str, path: str, secret: str | None) -> bytes:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say something nice about crabs."}],
            "max_tokens": 16,
        }
    ).encode()
    headers = {"content-type": "application/json"}
    if secret:
        headers["authorization"] = f"Bearer {secret}"
    return _request("POST", path, host, headers, body)


# Processes


@contextlib.contextmanager
def _process(command: list[str], env: dict[str, str], log: Path, ready: str) -> Iterator[Spawned]:
    """`command`, with "{port}" replaced by a free port, once `ready` answers 200."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    # Started before any measurement: waiting blocks the event loop, which has nothing to do.
    with running(
        command, port=port, log=log, env=env, cwd=REPO, ready=ready, within=90, append=True
    ) as server:
        yield server


def _fake_command() -> list[str]:
    return [sys.executable, "-m", "crabglamp.cli", "fake-upstream", "--port", "{port}"]


def _app_command(workers: int) -> list[str]:
    # As in production: `crabglamp serve` (its multi-worker socket has TCP_NODELAY, see cli.py).
    return [
        sys.executable,
        "-m",
        "crabglamp.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        str(workers),
    ]


# Databases


async def _fresh_database(engine_name: str, admin_url: str) -> str:
    if engine_name == "sqlite":
        path = fresh_path(BENCH_DIR / "proxy-bench.db")
        return f"sqlite+aiosqlite:///{path.resolve()}"
    name = "crabglamp_bench_proxy"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return admin_url.rpartition("/")[0] + f"/{name}"


async def _seed(db_url: str) -> tuple[uuid.UUID, CreatedKey]:
    engine = make_engine(db_url)
    try:
        await upgrade(engine)
        account_id = uuid.uuid4()
        async with write_transaction(engine) as conn:
            await conn.execute(
                table_of(Account)
                .insert()
                .values(  # type: ignore[attr-defined]
                    id=account_id, name="Bench", owner_user_id=OWNER
                )
            )
            # Capped, so that every request goes through a real reservation; the cap is high
            # enough never to refuse.
            created = await create_key(conn, account_id, "bench", "openai", 10**9 * 10**6)
        assert isinstance(created, CreatedKey)
        return account_id, created
    finally:
        await engine.dispose()


# Measurements


@dataclass
class Latencies:
    direct: list[float]
    proxied: list[float]


async def _latencies(fake_port: int, app_port: int, secret: str, pairs: int) -> Latencies:
    direct, proxied = Connection("127.0.0.1", fake_port), Connection("127.0.0.1", app_port)
    await direct.open()
    await proxied.open()
    to_fake = _chat(f"127.0.0.1:{fake_port}", "/v1/chat/completions", None)
    to_proxy = _chat(f"127.0.0.1:{app_port}", "/v1/chat/completions", secret)
    result = Latencies([], [])
    try:
        for n in range(pairs + 50):
            # Alternating, so both see the same background load of a shared machine.
            t0 = time.perf_counter()
            status, _ = await direct.send(to_fake)
            t1 = time.perf_counter()
            status2, body = await proxied.send(to_proxy)
            t2 = time.perf_counter()
            if status != 200 or status2 != 200:
                raise RuntimeError(f"unexpected answer {status}/{status2}: {body[:300]!r}")
            if n >= 50:  # warm-up: connections, caches, the key look-up
                result.direct.append(t1 - t0)
                result.proxied.append(t2 - t1)
    finally:
        await direct.close()
        await proxied.close()
    return result


async def _throughput(port: int, request: bytes, connections: int, seconds: float) -> float:
    done = 0
    stop_at = 0.0
    measuring = False

    async def loop() -> None:
        nonlocal done
        conn = Connection("127.0.0.1", port)
        await conn.open()
        try:
            while time.perf_counter() < stop_at:
                status, body = await conn.send(request)
                if status != 200:
                    raise RuntimeError(f"unexpected answer {status}: {body[:300]!r}")
                if measuring:
                    done += 1
        finally:
            await conn.close()

    stop_at = time.perf_counter() + seconds + 1.0
    tasks = [asyncio.create_task(loop()) for _ in range(connections)]
    await asyncio.sleep(1.0)  # warm-up
    measuring = True
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    return done / (time.perf_counter() - started)


async def _freshness(
    app_port: int, secret: str, account_id: uuid.UUID, key_id: uuid.UUID, samples: int
) -> list[float]:
    from crabglamp.dev.devtokens.signing import mint_dev_token

    host = f"127.0.0.1:{app_port}"
    session = mint_dev_token(OWNER)
    usage_request = _request(
        "GET",
        f"/api/usage?accountId={account_id}&keyId={key_id}",
        host,
        {"authorization": f"Bearer {session}"},
    )
    proxy_request = _chat(host, "/v1/chat/completions", secret)
    proxied, reader = Connection("127.0.0.1", app_port), Connection("127.0.0.1", app_port)
    await proxied.open()
    await reader.open()

    async def counted() -> int:
        status, body = await reader.send(usage_request)
        if status != 200:
            raise RuntimeError(f"GET /api/usage answered {status}: {body[:300]!r}")
        keys = json.loads(body)["llm"]["keys"]
        return sum(k["requestCount"] for k in keys if k["keyId"] == str(key_id))

    delays = []
    try:
        expected = await counted()
        for _ in range(samples):
            status, body = await proxied.send(proxy_request)
            if status != 200:
                raise RuntimeError(f"proxy answered {status}: {body[:300]!r}")
            done = time.perf_counter()
            expected += 1
            while await counted() < expected:
                if time.perf_counter() - done > 10:
                    raise RuntimeError("a request was not visible in usage after 10 s")
                await asyncio.sleep(0.001)
            delays.append(time.perf_counter() - done)
    finally:
        await proxied.close()
        await reader.close()
    return delays


@dataclass
class Options:
    engines: list[str]
    workers: list[int]
    pairs: int
    connections: int
    seconds: float
    freshness_samples: int
    postgres_url: str


@contextlib.contextmanager
def _config_file(fake_port: int) -> Iterator[Path]:
    path = BENCH_DIR / f"proxy-bench-{os.getpid()}.toml"
    path.write_text(
        f'[providers.openai]\nurl = "http://127.0.0.1:{fake_port}/v1"\nkey = "sk-bench"\n'
    )
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


async def measure(options: Options, want_p4: bool = True, want_p5: bool = True) -> list[Result]:
    prepare_dir()
    results: list[Result] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = BENCH_DIR / "proxy-bench.log"
    with (
        _process(_fake_command(), env, log, "/v1/models") as fake,
        _config_file(fake.port) as config,
    ):
        for engine_name in options.engines:
            db_url = await _fresh_database(engine_name, options.postgres_url)
            account_id, key = await _seed(db_url)
            app_env = env | {"DATABASE_URL": db_url, "CRABGLAMP_UPSTREAM_CONFIG": str(config)}
            for workers in options.workers:
                with _process(_app_command(workers), app_env, log, "/healthz") as app:
                    if want_p4:
                        results += await _p4(
                            options, engine_name, workers, fake.port, app.port, key
                        )
                    if want_p5 and workers == options.workers[0]:
                        delays = await _freshness(
                            app.port,
                            key.secret,
                            account_id,
                            key.key.id,
                            options.freshness_samples,
                        )
                        results.append(_p5_result(engine_name, delays))
                    print(f"[{engine_name}] {workers} worker(s) done", flush=True)
    return results


async def _p4(
    options: Options, engine_name: str, workers: int, fake_port: int, app_port: int, key: CreatedKey
) -> list[Result]:
    lat = await _latencies(fake_port, app_port, key.secret, options.pairs)
    ms = {
        name: {p: percentile(samples, p) * 1000 for p in (50, 99)}
        for name, samples in (("direct", lat.direct), ("proxied", lat.proxied))
    }
    added50 = ms["proxied"][50] - ms["direct"][50]
    added99 = ms["proxied"][99] - ms["direct"][99]
    direct_rps = await _throughput(
        fake_port,
        _chat(f"127.0.0.1:{fake_port}", "/v1/chat/completions", None),
        options.connections,
        options.seconds,
    )
    proxied_rps = await _throughput(
        app_port,
        _chat(f"127.0.0.1:{app_port}", "/v1/chat/completions", key.secret),
        options.connections,
        options.seconds,
    )
    detail = {
        "workers": workers,
        "pairs": options.pairs,
        "directMs": ms["direct"],
        "proxiedMs": ms["proxied"],
        "connections": options.connections,
        "seconds": options.seconds,
        "directReqPerS": direct_rps,
    }
    label = f"{workers} worker{'s' if workers > 1 else ''}"
    return [
        Result("P4", f"proxy adds, p50 ({label})", engine_name, added50, "ms", 1.0, detail=detail),
        Result("P4", f"proxy adds, p99 ({label})", engine_name, added99, "ms", 5.0, detail=detail),
        Result(
            "P4",
            f"through the proxy ({label}; direct {direct_rps:,.0f})",
            engine_name,
            proxied_rps,
            "req/s",
            1000.0,
            lower_is_better=False,
            detail=detail,
        ),
    ]


def _p5_result(engine_name: str, delays: list[float]) -> Result:
    ms = {p: percentile(delays, p) * 1000 for p in (50, 99, 100)}
    return Result(
        "P5",
        "request done -> counted by GET /api/usage, p99",
        engine_name,
        ms[99],
        "ms",
        1000.0,
        detail={"samples": len(delays), "p50Ms": ms[50], "p99Ms": ms[99], "maxMs": ms[100]},
    )


# Registered with `just bench` (benchmarks/run.py)


def _options_from(ctx: Context, engines: list[str]) -> Options:
    return Options(
        engines=engines,
        workers=[1, 2],
        pairs=1000,
        connections=64,
        seconds=5.0,
        freshness_samples=200,
        postgres_url=ctx.postgres_admin_url,
    )


@benchmark(
    "p4-proxy-overhead",
    target="P4",
    description="proxy vs the fake upstream directly: p50/p99 added, req/s (1 and 2 workers)",
    needs_dataset=False,
    order=400,
)
async def p4_proxy_overhead(ctx: Context) -> list[Result]:
    return await measure(_options_from(ctx, [ctx.engine_name]), want_p5=False)


@benchmark(
    "p5-proxy-freshness",
    target="P5",
    description="request done through the proxy -> counted by GET /api/usage",
    needs_dataset=False,
    order=410,
)
async def p5_proxy_freshness(ctx: Context) -> list[Result]:
    options = _options_from(ctx, [ctx.engine_name])
    options.workers = [1]
    return await measure(options, want_p4=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.proxy_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2", help="worker processes to try, e.g. 1,2,4")
    parser.add_argument(
        "--pairs", type=int, default=1000, help="latency samples (direct + proxied)"
    )
    parser.add_argument(
        "--connections", type=int, default=64, help="concurrent connections for req/s"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each req/s run")
    parser.add_argument("--freshness-samples", type=int, default=200)
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CRABGLAMP_BENCH_POSTGRES_URL",
            os.environ.get(
                "CRABGLAMP_TEST_POSTGRES_URL",
                "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
            ),
        ),
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s): {', '.join(sorted(unknown))}")
    options = Options(
        engines=engines,
        workers=[int(w) for w in args.workers.split(",")],
        pairs=args.pairs,
        connections=args.connections,
        seconds=args.seconds,
        freshness_samples=args.freshness_samples,
        postgres_url=args.postgres_url,
    )
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    results = asyncio.run(measure(options))
    from benchmarks.run import print_table, write_results

    print()
    print_table(results)
    out = args.out or BENCH_DIR / f"proxy-results-{started:%Y%m%dT%H%M%S}.json"
    write_results(
        out, "benchmarks.proxy_bench", started, load_before, results=[r.as_json() for r in results]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
