"""P4 before and after: the proxy of two code trees, measured in turns against one fake upstream.

    git worktree add /tmp/before <commit>
    python -m benchmarks.proxy_ab --before /tmp/before --engines sqlite,postgres --rounds 4

A shared 2-core machine drifts by ±15 % within minutes, more than most changes to the hot path
move. So each round runs both trees, in alternating order, one right after the other, each on a
fresh database with a capped key: `crabglamp serve` (one worker) under `wrk -c64` (throughput,
and the server's CPU per answered request from its own CPU time), then sequential requests
alternating with direct ones to the fake (the added latency, and the medians of the admission
and the record from the request log's `admit_ms` and `record_ms`). The medians over the rounds
are printed per tree and engine. "after" is the tree this module runs from.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.dataset import BENCH_DIR, prepare_dir
from benchmarks.peers_bench import cpu_seconds, wrk, wrk_path
from benchmarks.proxy_bench import (
    REPO,
    _app_command,
    _config_file,
    _fake_command,
    _fresh_database,
    _latencies,
    _process,
    _seed,
)
from benchmarks.registry import percentile


@dataclass
class Runs:
    """One tree on one engine, a value per round."""

    rps: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    added_p50_ms: list[float] = field(default_factory=list)
    admit_ms: list[float] = field(default_factory=list)
    record_ms: list[float] = field(default_factory=list)

    def line(self) -> str:
        def med(values: list[float]) -> str:
            return f"{statistics.median(values):.3f}" if values else "—"

        return (
            f"req/s at 64 {statistics.median(self.rps):,.0f} "
            f"({', '.join(f'{r:,.0f}' for r in self.rps)}); "
            f"CPU/request {med(self.cpu_ms)} ms ({', '.join(f'{c:.3f}' for c in self.cpu_ms)}); "
            f"added p50 {med(self.added_p50_ms)} ms; "
            f"admit {med(self.admit_ms)} ms, record {med(self.record_ms)} ms"
        )


def _log_medians(log: Path, last: int) -> tuple[float | None, float | None]:
    lines = [
        json.loads(line)
        for line in log.read_text().splitlines()
        if line.startswith("{") and '"proxy_request"' in line
    ][-last:]

    def med(name: str) -> float | None:
        values = [entry[name] for entry in lines if name in entry]
        return statistics.median(values) if values else None

    return med("admit_ms"), med("record_ms")


async def _one(
    tree: Path, engine: str, fake_port: int, config: Path, options: argparse.Namespace
) -> tuple[float, float, float, float | None, float | None]:
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(tree / "backend"), str(tree)]),
    }
    db_url = await _fresh_database(engine, options.postgres_url)
    _, key = await _seed(db_url)
    app_env = env | {"DATABASE_URL": db_url, "CRABGLAMP_UPSTREAM_CONFIG": str(config)}
    log = BENCH_DIR / f"proxy-ab-{engine}.log"
    log.unlink(missing_ok=True)
    with _process(_app_command(1), app_env, log, "/healthz") as app:
        await wrk(app.port, key.secret, 64, 2)  # warm-up: connections, caches, the key
        before = cpu_seconds(app.process.pid)
        load = await wrk(app.port, key.secret, 64, options.seconds)
        cpu = cpu_seconds(app.process.pid) - before
        lat = await _latencies(fake_port, app.port, key.secret, options.pairs)
    added = (percentile(lat.proxied, 50) - percentile(lat.direct, 50)) * 1000
    admit, record = _log_medians(log, options.pairs)
    return load.answered / load.seconds, cpu / load.answered * 1000, added, admit, record


async def measure(options: argparse.Namespace) -> dict[tuple[str, str], Runs]:
    prepare_dir()
    trees = {"before": options.before, "after": REPO}
    results = {(e, name): Runs() for e in options.engines for name in trees}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with (
        _process(_fake_command(), env, BENCH_DIR / "proxy-ab-fake.log", "/v1/models") as fake,
        _config_file(fake.port) as config,
    ):
        for round_ in range(options.rounds):
            order = ("before", "after") if round_ % 2 == 0 else ("after", "before")
            for engine in options.engines:
                for name in order:
                    rps, cpu, added, admit, record = await _one(
                        trees[name], engine, fake.port, config, options
                    )
                    runs = results[(engine, name)]
                    runs.rps.append(rps)
                    runs.cpu_ms.append(cpu)
                    runs.added_p50_ms.append(added)
                    if admit is not None and record is not None:
                        runs.admit_ms.append(admit)
                        runs.record_ms.append(record)
                    print(
                        f"  round {round_ + 1} {engine} {name}: {rps:,.0f} req/s, "
                        f"{cpu:.3f} ms CPU, added p50 {added:.2f} ms",
                        flush=True,
                    )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.proxy_ab", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--before", required=True, help="a checkout of the code to compare")
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each wrk run")
    parser.add_argument("--pairs", type=int, default=300, help="sequential latency samples")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "CRABGLAMP_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    args.before = Path(args.before).resolve()
    if not (args.before / "backend" / "crabglamp").is_dir():
        parser.error(f"--before {args.before}: not a checkout of this project (no backend/)")
    wrk_path()
    results = asyncio.run(measure(args))
    for (engine, name), runs in results.items():
        print(f"{engine} {name}: {runs.line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
