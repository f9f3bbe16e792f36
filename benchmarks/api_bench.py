"""P1 at the API level: GraphQL `usage` and `GET /api/usage` for the big account's month.

    just bench-api                                   # 10M events, both engines
    just bench-api --events 200000 --engines sqlite  # a quick run on the small dataset
    just bench-api --profile                         # also cProfile in-process requests

One account-month (the dataset's big account, October 2026), all three axes, LLM daily x model,
asked for by an organisation admin with a real signed session token (RS256, verified by the
app's `Authenticator` exactly as a Clerk token would be), in production settings (GraphiQL and
introspection off, errors masked, the query limits on):

- **GraphQL** `usage(filter: {accountId, month})` with P1_DOCUMENT: all axes, LLM daily x model,
  and the lists a usage page shows (the union of the dashboard's chart and key-card documents;
  none of them alone covers all axes). Target P1.
- **REST** `GET /api/usage?month=2026-10&accountId=…`. Target P1.
- Without a target, to show what a document's size costs: GraphQL asking every field REST
  returns (same numbers, same bytes), and the dashboard's own `LlmDailyChart.graphql`.

Each is timed over `--runs` warm requests (default 200), one at a time, the cases taking turns:
- **in-process**: through the ASGI app with `httpx.ASGITransport` (no sockets);
- **live**: `crabglamp serve --workers 1` on loopback with keep-alive, HTTP parsing included
  (CRABGLAMP_BACKGROUND=0, so the anomaly and billing jobs do not run during the measurement;
  `serve` upgrades the dataset to the newest schema first, as it would any database).

Before timing, each answer must agree with the usage service's result for the same query (in
the API's units by `rest.usage_json`, GET /api/usage's own serialiser), to the micro-cent (every cents value is micro-cents / 1e6, so equal floats mean equal micro-cents;
REST and the every-field document exactly, the smaller documents on every value they ask for),
and every timed response must be byte-identical to the checked one. A breakdown (token
verification, usage(), GraphQL execution without HTTP, JSON encoding) shows where the time goes.
"""

from __future__ import annotations

import cProfile
import hashlib
import json
import os
import pstats
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.dataset import BENCH_DIR, BENCH_MONTH, Dataset
from benchmarks.registry import Context, Result, benchmark, percentile
from crabglamp.access import Caller
from crabglamp.api.auth import Authenticator
from crabglamp.api.graphql.context import make_context
from crabglamp.api.graphql.schema import build_schema
from crabglamp.api.rest import UsageResponse, usage_json
from crabglamp.app import create_app
from crabglamp.db import read_transaction
from crabglamp.db.reads import Reads
from crabglamp.dev.devtokens.signing import sign_session_token
from crabglamp.periods import utcnow
from crabglamp.settings import Settings
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import Usage
from crabglamp.usage.service import usage
from devsupport.servers import free_port, running

REPO: Final = Path(__file__).resolve().parents[1]
ISSUER: Final = "https://clerk.bench.crabglamp.invalid"
AZP: Final = "http://127.0.0.1"
# dataset.py names the big account's organisation org_bench_00; its admin reads the account.
ORG: Final = "org_bench_00"
USER: Final = "user_bench_p1"
MONTH: Final = f"{BENCH_MONTH.start:%Y-%m}"
P50_GOAL_MS: Final = 10.0
P95_GOAL_MS: Final = 30.0
WARMUP: Final = 10
PROFILED_REQUESTS: Final = 30

# P1's document: an account-month on all three axes, LLM daily x model, with the lists a usage
# page shows next to the charts (models, keys, agents; compute agents and plain VMs; voice
# models). The dashboard splits this over several documents (ComputeChart, LlmDailyChart,
# VoiceChart, KeyCards); none of them alone covers all axes.
P1_DOCUMENT: Final = """
query P1AccountMonth($filter: UsageFilter!) {
  usage(filter: $filter) {
    llm {
      totalCents
      requestCount
      daily { date totalCents models { model provider totalCents requestCount } }
      models { model provider totalCents requestCount }
      keys { keyId keyName totalCents requestCount }
      agents { agentId agentName totalCents requestCount }
    }
    compute {
      totalCents
      daily {
        date totalCents
        agents { agentId runningCents pausedCents }
        plainVms { plainVmId costCents }
      }
      agents { agentId agentName totalCents }
      plainVms { plainVmId plainVmName costCents }
    }
    voice {
      totalCents
      daily { date totalCents models { voiceModel totalCents characters } }
      models { voiceModel totalCents characters }
    }
  }
}
"""
_COMPUTE_AGENT = "agentId agentName runningCents pausedCents runningHours pausedHours totalCents"
_PLAIN_VM = "plainVmId plainVmName costCents hours"
_LLM_MODEL = (
    "model provider totalCents requestCount inputTokens outputTokens cachedInputTokens "
    "cacheWrite5mTokens cacheWrite1hTokens reasoningTokens audioInputTokens audioOutputTokens "
    "cacheSavedCents"
)
_VOICE_MODEL = "voiceModel totalCents characters"
# Every field of GET /api/usage (CONTRACTS.md §2.2): both APIs carry the very same numbers and bytes.
REST_FIELDS_DOCUMENT: Final = f"""
query P1AccountMonthEveryField($filter: UsageFilter!) {{
  usage(filter: $filter) {{
    compute {{
      totalCents
      daily {{
        date agentCents plainVmCents totalCents
        agents {{ {_COMPUTE_AGENT} }}
        plainVms {{ {_PLAIN_VM} }}
      }}
      agents {{ {_COMPUTE_AGENT} }}
      plainVms {{ {_PLAIN_VM} }}
    }}
    llm {{
      totalCents
      daily {{ date totalCents requestCount models {{ {_LLM_MODEL} }} }}
      agents {{ agentId agentName totalCents requestCount }}
      models {{ {_LLM_MODEL} }}
      keys {{ keyId keyName provider spendCapCents totalCents requestCount }}
      hasKeys
    }}
    voice {{
      totalCents
      totalCharacters
      daily {{ date totalCents characters models {{ {_VOICE_MODEL} }} }}
      agents {{ agentId agentName totalCents characters }}
      models {{ {_VOICE_MODEL} }}
      hasVoiceUsage
    }}
  }}
}}
"""
LLM_CHART_PATH: Final = REPO / "frontend" / "src" / "graphql" / "LlmDailyChart.graphql"


# What the service says, in the API's units: GET /api/usage's own serialiser, as the parity tests
# (tests/test_api_parity.py) have it, so that GraphQL is held to REST's numbers


def expected_usage(spent: Usage) -> dict[str, Any]:
    """The service's result shaped as GET /api/usage and the all-axes document answer it."""
    shaped = usage_json(spent)
    # Not in REST: the dashboard's chart asks for it (checked against its document).
    shaped["llm"]["requestCount"] = sum(d.request_count for d in spent.llm.daily)
    return shaped


def disagreements(answer: Any, expected: Any, path: str = "") -> Iterator[str]:
    """Where `answer` differs from `expected` on the fields `answer` has (lists: same length,
    same order). A field of `answer` that `expected` lacks is a disagreement too."""
    if isinstance(answer, dict) and isinstance(expected, dict):
        for name, value in answer.items():
            if name not in expected:
                yield f"{path}.{name} (unexpected)"
            else:
                yield from disagreements(value, expected[name], f"{path}.{name}")
    elif isinstance(answer, list) and isinstance(expected, list):
        if len(answer) != len(expected):
            yield f"{path} ({len(answer)} items, expected {len(expected)})"
        else:
            for i, (a, e) in enumerate(zip(answer, expected, strict=True)):
                yield from disagreements(a, e, f"{path}[{i}]")
    elif answer != expected or type(answer) is not type(expected):
        # 1 == 1.0 in Python, but a count sent as a float is a bug a client would notice.
        yield f"{path}: {answer!r} != {expected!r}"


def count_values(value: Any) -> int:
    if isinstance(value, dict):
        return sum(1 + count_values(v) for v in value.values())
    if isinstance(value, list):
        return sum(count_values(v) for v in value)
    return 0


def _check(what: str, answer: Any, expected: Any, both_ways: bool) -> None:
    problems = list(disagreements(answer, expected))
    if both_ways:
        problems += [f"{p} (missing from the answer)" for p in disagreements(expected, answer)]
    if problems:
        shown = "; ".join(problems[:8])
        raise AssertionError(f"{what} disagrees with usage() on {len(problems)} value(s): {shown}")


# Timing


@dataclass(slots=True)
class Case:
    name: str
    method: str
    path: str
    body: dict[str, Any] | None
    # Turns the parsed response into what is compared with the service's answer.
    answer: Callable[[Any], Any]
    both_ways: bool
    request_bytes: int = 0

    def __post_init__(self) -> None:
        self.request_bytes = len(json.dumps(self.body)) if self.body is not None else 0


@dataclass(slots=True)
class Timing:
    samples: list[float]
    body_bytes: int
    header_bytes: int
    # Names and leaves in the JSON answer: about the number of fields GraphQL resolved.
    values: int

    def stats(self) -> dict[str, Any]:
        s = self.samples
        return {
            "p50": percentile(s, 50),
            "p95": percentile(s, 95),
            "p99": percentile(s, 99),
            "min": min(s),
            "max": max(s),
            "runs": len(s),
            "responseBodyBytes": self.body_bytes,
            "responseHeaderBytes": self.header_bytes,
            "values": self.values,
        }


def _graphql_data(body: Any, *fields: str) -> Any:
    if body.get("errors"):
        raise AssertionError(f"GraphQL answered errors: {body['errors']}")
    found = body["data"]
    for name in fields:
        found = found[name]
    return found


GRAPHQL_P1 = "GraphQL usage, all axes"
REST_P1 = "REST GET /api/usage"
GRAPHQL_REST_FIELDS = "GraphQL usage, every REST field"
GRAPHQL_LLM_CHART = "GraphQL LlmDailyChart (dashboard)"
# The two figures P1 is judged on; the others show what the size of a document costs.
WITH_GOAL: Final = frozenset({GRAPHQL_P1, REST_P1})


def cases(account: uuid.UUID) -> list[Case]:
    variables = {"filter": {"accountId": str(account), "month": MONTH}}
    return [
        Case(
            GRAPHQL_P1,
            "POST",
            "/graphql",
            {"query": P1_DOCUMENT, "variables": variables},
            lambda body: _graphql_data(body, "usage"),
            both_ways=False,
        ),
        Case(
            REST_P1,
            "GET",
            f"/api/usage?month={MONTH}&accountId={account}",
            None,
            lambda body: body,
            both_ways=True,
        ),
        Case(
            GRAPHQL_REST_FIELDS,
            "POST",
            "/graphql",
            {"query": REST_FIELDS_DOCUMENT, "variables": variables},
            lambda body: _graphql_data(body, "usage"),
            both_ways=True,
        ),
        Case(
            GRAPHQL_LLM_CHART,
            "POST",
            "/graphql",
            {"query": LLM_CHART_PATH.read_text(), "variables": variables},
            lambda body: _graphql_data(body, "usage"),
            both_ways=False,
        ),
    ]


async def _send(client: httpx.AsyncClient, case: Case, headers: dict[str, str]) -> httpx.Response:
    if case.method == "GET":
        return await client.get(case.path, headers=headers)
    return await client.post(case.path, json=case.body, headers=headers)


def _header_bytes(response: httpx.Response) -> int:
    # Status line and headers as they went over the wire (HTTP/1.1).
    lines = [f"HTTP/1.1 {response.status_code} {response.reason_phrase}"]
    lines += [f"{k}: {v}" for k, v in response.headers.items()]
    return len("\r\n".join(lines).encode()) + 4


async def time_cases(
    client: httpx.AsyncClient,
    chosen: list[Case],
    headers: dict[str, str],
    expected: dict[str, Any],
    runs: int,
) -> dict[str, Timing]:
    """Check each case's answer against the service, then time `runs` warm requests of each.

    The cases take turns (one request of each per round), so that a change of load on the
    shared machine weighs on all of them alike.
    """
    digests: dict[str, bytes] = {}
    timings: dict[str, Timing] = {}
    for case in chosen:
        first = await _send(client, case, headers)
        if first.status_code != 200:
            raise AssertionError(f"{case.name}: HTTP {first.status_code}: {first.text[:300]}")
        _check(case.name, case.answer(first.json()), expected[case.name], case.both_ways)
        digests[case.name] = hashlib.sha256(first.content).digest()
        timings[case.name] = Timing(
            [], len(first.content), _header_bytes(first), count_values(first.json())
        )
    for _ in range(WARMUP):
        for case in chosen:
            await _send(client, case, headers)
    for _ in range(runs):
        for case in chosen:
            started = time.perf_counter()
            response = await _send(client, case, headers)
            body = response.content
            timings[case.name].samples.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or hashlib.sha256(body).digest() != digests[case.name]:
                raise AssertionError(f"{case.name}: a timed response differs from the checked one")
    return timings


# Where the time goes, without HTTP


async def _rounds(
    steps: Mapping[str, Callable[[], Awaitable[Any]]], runs: int
) -> dict[str, dict[str, float]]:
    """p50 and p95 of each step, the steps taking turns (as in time_cases)."""
    samples: dict[str, list[float]] = {name: [] for name in steps}
    for n in range(5 + runs):
        for name, step in steps.items():
            started = time.perf_counter()
            await step()
            if n >= 5:
                samples[name].append((time.perf_counter() - started) * 1000)
    return {
        name: {"p50": percentile(found, 50), "p95": percentile(found, 95)}
        for name, found in samples.items()
    }


async def breakdown(
    engine: AsyncEngine,
    settings: Settings,
    token: str,
    query: UsageQuery,
    account: uuid.UUID,
    runs: int,
) -> dict[str, dict[str, float]]:
    authenticator = Authenticator(settings)
    caller: Caller = authenticator.verify(token)
    schema = build_schema(production=settings.production)
    variables = {"filter": {"accountId": str(account), "month": MONTH}}
    spent_box: list[Usage] = []
    result_box: list[Any] = []

    async def verify() -> None:
        authenticator.verify(token)

    # As the app reads: on SQLite on reader threads (db/reads.py).
    reads = Reads(engine)

    async def service() -> None:
        spent_box[:] = [await reads.run(lambda conn: usage(conn, query))]

    async def rest_encode() -> None:
        # What GET /api/usage sends: orjson, not starlette's json.dumps.
        UsageResponse(usage_json(spent_box[0]))

    async def execute(document: str, preloaded: bool) -> Any:
        context = make_context(None, engine, caller, settings, reads=reads)
        if preloaded:
            # The three axes already loaded: what GraphQL itself costs.
            spent = spent_box[0]
            context.loaders.compute.prime(query, spent.compute)
            context.loaders.llm.prime(query, spent.llm)
            context.loaders.voice.prime(query, spent.voice)
        try:
            result = await schema.execute(
                document, variable_values=variables, context_value=context
            )
        finally:
            await context.db.close()
        if result.errors:
            raise AssertionError(f"GraphQL answered errors: {result.errors}")
        return result.data

    async def graphql_execute() -> None:
        result_box[:] = [await execute(P1_DOCUMENT, preloaded=False)]

    async def graphql_resolution() -> None:
        await execute(P1_DOCUMENT, preloaded=True)

    async def graphql_resolution_rest_fields() -> None:
        await execute(REST_FIELDS_DOCUMENT, preloaded=True)

    async def graphql_encode() -> None:
        json.dumps({"data": result_box[0]}, separators=(",", ":"))

    steps = {
        "verify token (RS256)": verify,
        "usage() service, own transaction": service,
        "REST: usage_json + UsageResponse (orjson)": rest_encode,
        "GraphQL P1: schema.execute (incl. usage)": graphql_execute,
        "GraphQL P1: execute, axes preloaded": graphql_resolution,
        "GraphQL P1: JSON encoding": graphql_encode,
        "GraphQL every REST field: execute, preloaded": graphql_resolution_rest_fields,
    }
    try:
        return await _rounds(steps, max(20, runs // 4))
    finally:
        await reads.close()


# A live server


def _absolute_url(url: str) -> str:
    prefix = "sqlite+aiosqlite:///"
    if url.startswith(prefix) and not url[len(prefix) :].startswith("/"):
        return prefix + str((REPO / url[len(prefix) :]).resolve())
    return url


@contextmanager
def live_server(dataset: Dataset, public_pem: str) -> Iterator[str]:
    """`crabglamp serve --workers 1` on the dataset, on loopback; yields its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _absolute_url(dataset.url),
        "CLERK_JWT_KEY": public_pem,
        "CLERK_ISSUER": ISSUER,
        "CLERK_AUTHORIZED_PARTIES": AZP,
        "CRABGLAMP_PRODUCTION": "1",
        "CRABGLAMP_BACKGROUND": "0",
    }
    command = [
        sys.executable,
        "-m",
        "crabglamp.cli",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    log = BENCH_DIR / f"api-bench-serve-{dataset.engine_name}.log"
    with running(command, port=port, log=log, env=env, cwd=REPO, within=180) as server:
        yield server.url


# The benchmark


def _signing_key() -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return key, pem


async def _profile(
    client: httpx.AsyncClient, case: Case, headers: dict[str, str], ctx: Context
) -> Path:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(PROFILED_REQUESTS):
        await _send(client, case, headers)
    profiler.disable()
    slug = {
        GRAPHQL_P1: "graphql",
        REST_P1: "rest",
        GRAPHQL_REST_FIELDS: "graphql-rest-fields",
        GRAPHQL_LLM_CHART: "graphql-llm-chart",
    }[case.name]
    tag = ctx.dataset.shape.tag if ctx.dataset else "-"
    out = BENCH_DIR / f"profile-api-{ctx.engine_name}-{tag}-{slug}.txt"
    with out.open("w") as stream:
        stream.write(f"{case.name}: {PROFILED_REQUESTS} in-process requests\n\n")
        pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(50)
        pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(40)
    return out


@benchmark(
    "p1-api",
    target="P1",
    description="GraphQL usage and GET /api/usage, big account-month, in-process and live serve",
    order=25,
)
async def p1_api(ctx: Context) -> list[Result]:
    engine, dataset = ctx.need()
    runs = ctx.options.runs
    account = dataset.big_account
    key, pem = _signing_key()
    settings = Settings(
        database_url=dataset.url,
        production=True,
        clerk_jwt_key=pem,
        clerk_issuer=ISSUER,
        clerk_authorized_parties=(AZP,),
    )
    token = sign_session_token(
        key, issuer=ISSUER, azp=AZP, user_id=USER, org_id=ORG, org_role="admin", ttl=6 * 3600
    )
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    query = UsageQuery(period=BENCH_MONTH, account_ids=(account,))
    # The service's answer, read apart from the API. An open compute interval accrues until now;
    # in a past month it is cut at the month's end, so "now" here and in the API agree.
    async with read_transaction(engine) as conn:
        spent = await usage(conn, query, now=utcnow())
    expected = expected_usage(spent)
    rest_expected = {
        **expected,
        "llm": {k: v for k, v in expected["llm"].items() if k != "requestCount"},
    }
    chosen = cases(account)
    # The REST-shaped answers must be exactly the service's; the smaller documents must agree
    # with it on every value they ask for.
    wanted = {
        GRAPHQL_P1: expected,
        REST_P1: rest_expected,
        GRAPHQL_REST_FIELDS: rest_expected,
        GRAPHQL_LLM_CHART: expected,
    }
    shape = {
        "account": str(account),
        "month": MONTH,
        "llmRequests": expected["llm"]["requestCount"],
        "llmDayModelCells": sum(len(d["models"]) for d in expected["llm"]["daily"]),
        "keys": len(expected["llm"]["keys"]),
        "llmAgents": len(expected["llm"]["agents"]),
        "computeAgents": len(expected["compute"]["agents"]),
        "equalToService": True,
        "load": list(os.getloadavg()),
    }
    timings: dict[tuple[str, str], Timing] = {}

    app = create_app(replace(settings), engine)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=AZP) as client,
    ):
        print(f"  [{ctx.engine_name}] P1 API in-process: {len(chosen)} x {runs} ...", flush=True)
        found = await time_cases(client, chosen, headers, wanted, runs)
        timings |= {("in-process", name): timing for name, timing in found.items()}
        if ctx.options.profile:
            for case in chosen:
                out = await _profile(client, case, headers, ctx)
                print(f"  [{ctx.engine_name}] profile written to {out}", flush=True)

    print(f"  [{ctx.engine_name}] P1 API: starting crabglamp serve --workers 1 ...", flush=True)
    with live_server(dataset, pem) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            print(f"  [{ctx.engine_name}] P1 API live: {len(chosen)} x {runs} ...", flush=True)
            found = await time_cases(client, chosen, headers, wanted, runs)
            timings |= {("live", name): timing for name, timing in found.items()}

    print(f"  [{ctx.engine_name}] P1 API: breakdown without HTTP ...", flush=True)
    parts = await breakdown(engine, settings, token, query, account, runs)
    shape["loadAfter"] = list(os.getloadavg())

    results: list[Result] = []
    for (mode, name), timing in timings.items():
        stats = timing.stats() | {"requestBodyBytes": _case(chosen, name).request_bytes}
        detail = stats | shape | ({"breakdownMs": parts} if mode == "in-process" else {})
        has_goal = name in WITH_GOAL
        results += [
            Result(
                "P1",
                f"{name}, {mode}, p50",
                ctx.engine_name,
                stats["p50"],
                "ms",
                P50_GOAL_MS if has_goal else None,
                detail=detail,
            ),
            Result(
                "P1",
                f"{name}, {mode}, p95",
                ctx.engine_name,
                stats["p95"],
                "ms",
                P95_GOAL_MS if has_goal else None,
                detail=stats,
            ),
        ]
    for name in (c.name for c in chosen):
        t = timings[("in-process", name)]
        results.append(
            Result(
                "-",
                f"{name}, response body",
                ctx.engine_name,
                t.body_bytes,
                "bytes",
                detail={"headerBytes": t.header_bytes, "values": t.values},
            )
        )
    print(f"  [{ctx.engine_name}] where the time goes (in-process, no HTTP), p50 / p95 ms:")
    for step, figures in parts.items():
        print(f"    {step:<46} {figures['p50']:8.2f} {figures['p95']:8.2f}")
    return results


def _case(chosen: list[Case], name: str) -> Case:
    return next(c for c in chosen if c.name == name)
