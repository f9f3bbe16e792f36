"""CrabGlamp's proxy beside LiteLLM's, in front of the same LOCAL FAKE upstream, in one run.

    python -m benchmarks.peers_bench                  # direct, CrabGlamp SQLite + PostgreSQL, LiteLLM
    python -m benchmarks.peers_bench --seconds 10 --pairs 500
    just bench-peers                                  # installs LiteLLM in .venv-peers first

Each contender serves the same chat completion (`gpt-4o-mini`, `max_tokens: 16`) from one worker
process, in front of one `crabglamp fake-upstream`:

- req/s at 32 and 64 connections from `wrk` (Debian's package: a load generator in C, so that
  the client's cost is not mistaken for the proxy's), and at 64 from the project's own Python
  client (benchmarks/proxy_bench.py) beside it;
- the latency added to a request, sequentially, alternating with a request straight to the fake
  on a keep-alive connection each (p50, p99);
- the contender's CPU time per request over its `wrk` runs (its processes' user + system time
  from /proc, divided by the requests answered);
- for CrabGlamp, every answered request is on record: after each load run the key's events are
  counted and must be at least the answers seen (some requests cut off at a run's end are
  recorded without their answer being read).

LiteLLM runs with a master key only: its own database (spend per key, durable logs) needs the
Prisma engines, which its first start downloads, and this machine reaches no host but the package
registries. It therefore does *less* work per request than CrabGlamp (no per-key cap, no durable
record).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.dataset import BENCH_DIR, prepare_dir
from benchmarks.proxy_bench import (
    MODEL,
    REPO,
    Connection,
    _app_command,
    _chat,
    _config_file,
    _fake_command,
    _fresh_database,
    _latencies,
    _process,
    _seed,
)
from benchmarks.registry import percentile
from crabglamp.db import make_engine
from crabglamp.db.tables import table_of
from crabglamp.models import LlmEvent

PEERS_VENV = REPO / ".venv-peers"
LITELLM_MASTER_KEY = "sk-bench-master"
CONNECTIONS = (32, 64)


# CPU time of a process and its descendants, from /proc (Linux)


def _ticks(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def cpu_seconds(root: int) -> float:
    return sum(_ticks(pid) for pid in _tree(root)) / os.sysconf("SC_CLK_TCK")


# Load generators


@dataclass
class Load:
    answered: int  # 2xx answers
    failed: int  # other answers and socket errors
    seconds: float

    @property
    def per_second(self) -> float:
        return self.answered / self.seconds if self.seconds else 0.0


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is missing: apt-get install -y wrk")
    return found


async def wrk(port: int, secret: str | None, connections: int, seconds: float) -> Load:
    """`wrk` with one thread (the machine has two cores, shared with the server under test)."""
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Say something nice about crabs."}],
            "max_tokens": 16,
        }
    )
    script = BENCH_DIR / f"peers-wrk-{os.getpid()}.lua"
    lines = [
        'wrk.method = "POST"',
        f"wrk.body = {json.dumps(body)}",
        'wrk.headers["Content-Type"] = "application/json"',
    ]
    if secret:
        lines.append(f'wrk.headers["Authorization"] = "Bearer {secret}"')
    script.write_text("\n".join(lines) + "\n")
    try:
        process = await asyncio.create_subprocess_exec(
            wrk_path(),
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}/v1/chat/completions",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out = (await process.communicate())[0].decode()
    finally:
        script.unlink(missing_ok=True)
    total = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if total is None:
        raise RuntimeError(f"wrk said:\n{out}")
    elapsed = float(total.group(2)) / (1000 if total.group(3) == "ms" else 1)
    not_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = int(not_ok.group(1)) if not_ok else 0
    failed = bad + (sum(int(g) for g in errors.groups()) if errors else 0)
    return Load(int(total.group(1)) - bad, failed, elapsed)


async def own_client(port: int, secret: str | None, connections: int, seconds: float) -> Load:
    """The project's own keep-alive client (proxy_bench.Connection), counting every answer."""
    request = _chat(f"127.0.0.1:{port}", "/v1/chat/completions", secret)
    answered = failed = 0
    stop_at = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal answered, failed
        conn = Connection("127.0.0.1", port)
        await conn.open()
        try:
            while time.perf_counter() < stop_at:
                status, _ = await conn.send(request)
                if status == 200:
                    answered += 1
                else:
                    failed += 1
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(connections)))
    return Load(answered, failed, time.perf_counter() - started)


# Contenders


@dataclass
class Row:
    name: str
    rps: dict[str, float] = field(default_factory=dict)  # "wrk 32", "wrk 64", "own 64"
    added_ms: dict[int, float] = field(default_factory=dict)  # 50, 99
    cpu_ms_per_request: float | None = None
    answered: int = 0
    recorded: int | None = None
    failed: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "reqPerS": self.rps,
            "addedMs": {f"p{p}": v for p, v in self.added_ms.items()},
            "cpuMsPerRequest": self.cpu_ms_per_request,
            "answered": self.answered,
            "recorded": self.recorded,
            "failed": self.failed,
        }


async def _load_runs(
    row: Row, port: int, secret: str | None, seconds: float, pid: int | None
) -> None:
    cpu_before = cpu_seconds(pid) if pid else 0.0
    wrk_answered = 0
    for connections in CONNECTIONS:
        load = await wrk(port, secret, connections, seconds)
        row.rps[f"wrk {connections}"] = load.per_second
        row.answered += load.answered
        row.failed += load.failed
        wrk_answered += load.answered
    if pid:
        row.cpu_ms_per_request = (cpu_seconds(pid) - cpu_before) * 1000 / max(1, wrk_answered)
    load = await own_client(port, secret, CONNECTIONS[-1], seconds)
    row.rps[f"own {CONNECTIONS[-1]}"] = load.per_second
    row.answered += load.answered
    row.failed += load.failed


async def _recorded(db_url: str, key_id: uuid.UUID) -> int:
    engine = make_engine(db_url)
    events = table_of(LlmEvent)
    try:
        async with engine.connect() as conn:
            count = await conn.execute(
                select(func.count()).select_from(events).where(events.c.key_id == key_id)
            )
            return int(count.scalar() or 0)
    finally:
        await engine.dispose()


@contextlib.contextmanager
def _litellm(fake_port: int, log: Path) -> Iterator[Any]:
    litellm = PEERS_VENV / "bin" / "litellm"
    if not litellm.exists():
        raise SystemExit(f"{litellm} is missing: run `just bench-peers` (it installs LiteLLM)")
    config = BENCH_DIR / f"peers-litellm-{os.getpid()}.yaml"
    config.write_text(
        "model_list:\n"
        f"  - model_name: {MODEL}\n"
        "    litellm_params:\n"
        f"      model: openai/{MODEL}\n"
        f"      api_base: http://127.0.0.1:{fake_port}/v1\n"
        "      api_key: sk-bench\n"
        "general_settings:\n"
        f"  master_key: {LITELLM_MASTER_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        # The price map ships with the package; never fetched (no network here anyway).
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
    }
    env.pop("DATABASE_URL", None)
    command = [
        str(litellm),
        "--config",
        str(config),
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--num_workers",
        "1",
    ]
    try:
        with _process(command, env, log, "/health/liveliness") as server:
            yield server
    finally:
        config.unlink(missing_ok=True)


@dataclass
class Options:
    engines: list[str]
    seconds: float
    pairs: int
    postgres_url: str
    litellm: bool


async def measure(options: Options) -> list[Row]:
    prepare_dir()
    rows: list[Row] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = BENCH_DIR / "peers-bench.log"
    with (
        _process(_fake_command(), env, log, "/v1/models") as fake,
        _config_file(fake.port) as config,
    ):
        direct = Row("direct to the fake")
        await _load_runs(direct, fake.port, None, options.seconds, None)
        rows.append(direct)
        print(f"[direct] {direct.rps}", flush=True)
        for engine_name in options.engines:
            db_url = await _fresh_database(engine_name, options.postgres_url)
            _, key = await _seed(db_url)
            app_env = env | {"DATABASE_URL": db_url, "CRABGLAMP_UPSTREAM_CONFIG": str(config)}
            row = Row(f"CrabGlamp {'SQLite' if engine_name == 'sqlite' else 'PostgreSQL'}")
            with _process(_app_command(1), app_env, log, "/healthz") as app:
                lat = await _latencies(fake.port, app.port, key.secret, options.pairs)
                row.answered += len(lat.proxied) + 50
                row.added_ms = {
                    p: (percentile(lat.proxied, p) - percentile(lat.direct, p)) * 1000
                    for p in (50, 99)
                }
                await _load_runs(row, app.port, key.secret, options.seconds, app.process.pid)
            row.recorded = await _recorded(db_url, key.key.id)
            print(f"[{row.name}] {row.rps} recorded {row.recorded} ≥ {row.answered}", flush=True)
            if row.recorded < row.answered:
                raise SystemExit(f"{row.name}: {row.answered} answered, {row.recorded} recorded")
            rows.append(row)
        if options.litellm:
            row = Row("LiteLLM (no DB)")
            with _litellm(fake.port, log) as server:
                lat = await _latencies(fake.port, server.port, LITELLM_MASTER_KEY, options.pairs)
                row.added_ms = {
                    p: (percentile(lat.proxied, p) - percentile(lat.direct, p)) * 1000
                    for p in (50, 99)
                }
                await _load_runs(
                    row, server.port, LITELLM_MASTER_KEY, options.seconds, server.process.pid
                )
            print(f"[{row.name}] {row.rps}", flush=True)
            rows.append(row)
    return rows


def table(rows: list[Row]) -> str:
    """The issue's table, in Markdown: one column per contender."""
    head = "| | " + " | ".join(r.name for r in rows) + " |"
    lines = [head, "|---" * (len(rows) + 1) + "|"]

    def cells(values: list[str]) -> str:
        return "| " + " | ".join(values) + " |"

    lines.append(
        cells(
            ["req/s at 32 / 64 connections (wrk)"]
            + [f"{r.rps['wrk 32']:,.0f} / {r.rps['wrk 64']:,.0f}" for r in rows]
        )
    )
    lines.append(cells(["req/s at 64 (own client)"] + [f"{r.rps['own 64']:,.0f}" for r in rows]))
    lines.append(
        cells(
            ["added latency p50 / p99, sequential"]
            + [
                f"{r.added_ms[50]:.1f} / {r.added_ms[99]:.1f} ms" if r.added_ms else "—"
                for r in rows
            ]
        )
    )
    lines.append(
        cells(
            ["CPU per request (wrk runs)"]
            + [
                f"{r.cpu_ms_per_request:.2f} ms" if r.cpu_ms_per_request is not None else "—"
                for r in rows
            ]
        )
    )
    lines.append(
        cells(
            ["answered / recorded"]
            + [f"{r.answered:,} / {r.recorded:,}" if r.recorded is not None else "—" for r in rows]
        )
    )
    return "\n".join(lines)


def litellm_version() -> str | None:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        return None
    import subprocess

    out = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.peers_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--pairs", type=int, default=500, help="sequential latency samples")
    parser.add_argument("--no-litellm", action="store_true", help="CrabGlamp only")
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
    wrk_path()
    options = Options(
        engines=[e.strip() for e in args.engines.split(",") if e.strip()],
        seconds=args.seconds,
        pairs=args.pairs,
        postgres_url=args.postgres_url,
        litellm=not args.no_litellm,
    )
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    rows = asyncio.run(measure(options))
    version = litellm_version() if options.litellm else None
    print()
    print(table(rows))
    print(f"\nLiteLLM {version}; load average {load_before} -> {os.getloadavg()}")
    out = args.out or BENCH_DIR / f"peers-results-{started:%Y%m%dT%H%M%S}.json"
    from benchmarks.run import write_results

    write_results(
        out,
        "benchmarks.peers_bench",
        started,
        load_before,
        litellm=version,
        rows=[r.as_json() for r in rows],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
