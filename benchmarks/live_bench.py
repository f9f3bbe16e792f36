"""P5 in the browser: a request through the proxy completes -> the open dashboard shows it.

    python -m benchmarks.live_bench                       # both engines, 1 and 2 workers, 30 runs
    python -m benchmarks.live_bench --engines sqlite --workers 1 --runs 10

The fake upstream and `crabglamp serve --workers N` run as processes of their own on a fresh
database with one key (benchmarks/proxy_bench.py sets them up); Debian's Chromium opens
`/dashboard/usage` signed in as the key's owner and waits until it is live. Each run sends one
chat completion through the proxy and measures from the moment its response is complete
(`time.time()` here) to the moment the page's LLM request count shows it (`Date.now()` in a
MutationObserver of the page: the same wall clock, no polling delay). The page is never
reloaded; it hears of the change over its `usageChanged` subscription and re-reads the parts
the change touches. Registered in `just bench` as p5-browser.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from benchmarks.dashboard_bench import CHROMIUM, CHROMIUM_ARGS, _build_frontend
from benchmarks.dataset import BENCH_DIR, fresh_path, prepare_dir
from benchmarks.proxy_bench import (
    ENGINES,
    MODEL,
    OWNER,
    _app_command,
    _config_file,
    _fake_command,
    _process,
    _seed,
)
from benchmarks.registry import Context, Result, benchmark, percentile

GOAL_MS = 1000.0
_OBSERVE = """
() => {
  window.__counts = [];
  const read = () => {
    const note = document.querySelector("[data-stat=llm] .stat-note");
    const found = note && /([\\d,]+) requests?/.exec(note.textContent || "");
    return found ? Number(found[1].replace(/,/g, "")) : null;
  };
  const seen = () => {
    const n = read();
    const last = window.__counts[window.__counts.length - 1];
    if (n !== null && (!last || last.n !== n)) window.__counts.push({ n, at: Date.now() });
  };
  new MutationObserver(seen).observe(document.body, { subtree: true, childList: true, characterData: true });
  seen();
}
"""


async def _fresh_database(engine_name: str, admin_url: str) -> str:
    """A database of this benchmark's own: proxy_bench's may be dropped under it meanwhile."""
    if engine_name == "sqlite":
        return f"sqlite+aiosqlite:///{fresh_path(BENCH_DIR / 'live-bench.db').resolve()}"
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = "crabglamp_bench_live"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            await conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await admin.dispose()
    return admin_url.rpartition("/")[0] + f"/{name}"


def _browse(base: str, secret: str, runs: int) -> list[float]:
    from playwright.sync_api import sync_playwright

    delays: list[float] = []
    request = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Crabs?"}],
        "max_tokens": 16,
    }
    with sync_playwright() as p, httpx.Client(base_url=base, timeout=60) as client:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900})
            page.goto(f"{base}/dev/sign-in?user={OWNER}&next=/dashboard/usage")
            page.wait_for_selector(".live-status[data-live=live]", timeout=60_000)
            page.wait_for_selector("#llm:is([data-state=ready], [data-state=empty])")
            page.evaluate(_OBSERVE)
            # One unmeasured run: the first re-read warms the server's queries.
            for n in range(runs + 1):
                shown: int = page.evaluate("window.__counts[window.__counts.length - 1].n")
                response = client.post(
                    "/v1/chat/completions",
                    json=request,
                    headers={"Authorization": f"Bearer {secret}"},
                )
                done_ms = time.time() * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"proxy answered {response.status_code}: {response.text}")
                page.wait_for_function(
                    "(n) => window.__counts.some((c) => c.n >= n)", arg=shown + 1, timeout=30_000
                )
                at: float = page.evaluate(
                    "(n) => window.__counts.find((c) => c.n >= n).at", shown + 1
                )
                if n:
                    delays.append(max(0.0, at - done_ms))
                # Apart, as a person's requests would be: each run starts from a quiet page.
                time.sleep(0.3)
        finally:
            browser.close()
    return delays


async def measure(
    engines: list[str], workers: list[int], runs: int, postgres_url: str
) -> list[Result]:
    prepare_dir()
    _build_frontend()
    results: list[Result] = []
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CRABGLAMP_BACKGROUND": "0"}
    env.pop("CRABGLAMP_PRODUCTION", None)
    env.pop("CLERK_JWT_KEY", None)
    log = BENCH_DIR / "live-bench.log"
    with (
        _process(_fake_command(), env, log, "/v1/models") as fake,
        _config_file(fake.port) as config,
    ):
        for engine_name in engines:
            db_url = await _fresh_database(engine_name, postgres_url)
            _account, key = await _seed(db_url)
            app_env = env | {"DATABASE_URL": db_url, "CRABGLAMP_UPSTREAM_CONFIG": str(config)}
            for count in workers:
                with _process(_app_command(count), app_env, log, "/healthz") as app:
                    delays = await asyncio.to_thread(_browse, app.url, key.secret, runs)
                label = f"{count} worker{'s' if count > 1 else ''}"
                detail = {
                    "workers": count,
                    "runs": len(delays),
                    "p50Ms": percentile(delays, 50),
                    "p95Ms": percentile(delays, 95),
                    "maxMs": max(delays),
                }
                for p in (50, 95):
                    results.append(
                        Result(
                            "P5",
                            f"proxied request done -> on the open page, p{p} ({label})",
                            engine_name,
                            percentile(delays, p),
                            "ms",
                            GOAL_MS if p == 95 else None,
                            detail=detail,
                        )
                    )
                print(f"[{engine_name}] {label}: {detail}", flush=True)
    return results


@benchmark(
    "p5-browser",
    target="P5",
    description="proxied request done -> the open dashboard shows it (Chromium, 1 and 2 workers)",
    needs_dataset=False,
    default=False,
    order=420,
)
async def p5_browser(ctx: Context) -> list[Result]:
    return await measure([ctx.engine_name], [1, 2], 30, ctx.postgres_admin_url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.live_bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--runs", type=int, default=30)
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
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    results = asyncio.run(
        measure(engines, [int(w) for w in args.workers.split(",")], args.runs, args.postgres_url)
    )
    from benchmarks.run import print_table, write_results

    print()
    print_table(results)
    out = args.out or BENCH_DIR / f"live-results-{started:%Y%m%dT%H%M%S}.json"
    write_results(
        out, "benchmarks.live_bench", started, load_before, results=[r.as_json() for r in results]
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
