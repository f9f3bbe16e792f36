"""A realistic, seeded benchmark dataset, written through the real ingest path and cached.

The shape: 50 accounts of which one holds a large share of the traffic, ~500 virtual keys (most
bound to one provider, some to an agent), 14 LLM models across four providers, two whole UTC
months of timestamps with a daily and weekly rhythm, plus voice requests and compute intervals
(agents running and paused, plain VMs, intervals across midnight and a few still open) so that
all three axes of the usage service have data. Event ids are time-ordered, as a proxy that mints
ULID-like ids would send them.

Generating the records is not timed; writing them through `Ingestor.record` in large batches
is, and that is the P3 measurement.
"""

from __future__ import annotations

import bisect
import json
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from crabglamp.db import make_engine, write_transaction
from crabglamp.db.tables import table_of
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.ingest.records import ComputeRecord, LlmRecord, Record, VoiceRecord
from crabglamp.migrate import upgrade
from crabglamp.models import Account, Agent, PlainVm, VirtualKey
from crabglamp.periods import Period, month_period

BENCH_DIR = Path("bench-data")
# Two fixed, whole months so that a dataset is the same whenever it is generated.
FIRST_DAY = date(2026, 9, 1)
LAST_DAY = date(2026, 10, 31)
BENCH_MONTH: Period = month_period(2026, 10)
DEFAULT_BATCH = 20_000

# (provider, model, share of the provider's traffic, typical input tokens, output tokens)
LLM_MODELS: dict[str, list[tuple[str, float, int, int]]] = {
    "openai": [
        ("gpt-4o-mini", 0.34, 900, 250),
        ("gpt-4o", 0.14, 1500, 400),
        ("gpt-4.1", 0.10, 2500, 500),
        ("gpt-5-mini", 0.16, 1200, 600),
        ("gpt-5", 0.06, 3000, 1200),
        ("text-embedding-3-small", 0.20, 600, 0),
    ],
    "anthropic": [
        ("claude-sonnet-4-5", 0.55, 3000, 700),
        ("claude-haiku-4-5", 0.35, 1200, 300),
        ("claude-opus-4-1", 0.10, 4000, 900),
    ],
    "google": [
        ("gemini-2.5-flash", 0.65, 1500, 400),
        ("gemini-2.5-pro", 0.35, 3500, 900),
    ],
    "mistral": [
        ("mistral-small-latest", 0.6, 800, 200),
        ("mistral-large-latest", 0.3, 2000, 500),
        ("mistral-embed", 0.1, 500, 0),
    ],
}
PROVIDER_SHARE = {"openai": 0.5, "anthropic": 0.3, "google": 0.12, "mistral": 0.08}
VOICE_MODELS = [
    ("tts-1", 0.45),
    ("gpt-4o-mini-tts", 0.3),
    ("tts-1-hd", 0.1),
    ("eleven_flash_v2_5", 0.1),
    ("eleven_multilingual_v2", 0.05),
]
# Relative traffic per UTC hour: quiet nights, a busy European and American working day.
HOUR_WEIGHTS = [
    0.35, 0.3, 0.28, 0.27, 0.3, 0.4, 0.6, 0.85, 1.1, 1.3, 1.45, 1.5,
    1.5, 1.6, 1.75, 1.8, 1.75, 1.6, 1.4, 1.2, 1.0, 0.8, 0.6, 0.45,
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Shape:
    events: int
    seed: int = 1
    accounts: int = 50
    keys: int = 500
    big_account_share: float = 0.4
    big_account_keys: int = 100
    voice_per_llm: float = 0.02

    @property
    def tag(self) -> str:
        return f"{_short(self.events)}_s{self.seed}"


@dataclass(slots=True)
class KeySpec:
    id: uuid.UUID
    account: int
    name: str
    provider: str | None
    agent_id: uuid.UUID | None
    # (provider, model, cumulative weight, tokens in, tokens out)
    models: list[tuple[str, str, float, int, int]]
    agents: list[uuid.UUID | None]


@dataclass(slots=True)
class Entities:
    account_ids: list[uuid.UUID]
    agents: list[list[uuid.UUID]]
    vms: list[list[tuple[uuid.UUID, int]]]
    keys: list[KeySpec]
    key_cum: list[float]
    account_cum: list[float]

    @property
    def big_account(self) -> uuid.UUID:
        return self.account_ids[0]


def _short(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _cumulative(weights: list[float]) -> list[float]:
    total, out = 0.0, []
    for w in weights:
        total += w
        out.append(total)
    return [c / total for c in out]


def build_entities(shape: Shape) -> Entities:
    rng = random.Random(f"entities-{shape.seed}")
    uid = lambda: uuid.UUID(int=rng.getrandbits(128), version=4)  # noqa: E731
    account_ids = [uid() for _ in range(shape.accounts)]
    # The big account has its own share; the others follow a Zipf-like tail.
    tail = [1 / (i + 1) ** 0.9 for i in range(shape.accounts - 1)]
    tail_total = sum(tail)
    account_weights = [shape.big_account_share] + [
        (1 - shape.big_account_share) * w / tail_total for w in tail
    ]
    agents = [
        [uid() for _ in range(20 if a == 0 else rng.randint(1, 5))] for a in range(len(account_ids))
    ]
    vms = [
        [
            (uid(), rng.choice([4_000_000, 8_000_000, 12_500_000, 30_000_000]))
            for _ in range(rng.randint(0, 3))
        ]
        for _ in account_ids
    ]
    # Keys: the big account gets its own number, the rest are spread by account weight.
    key_accounts = [0] * shape.big_account_keys
    rest = shape.keys - shape.big_account_keys
    for a in range(1, shape.accounts):
        key_accounts += [a] * max(
            1, round(rest * account_weights[a] / (1 - shape.big_account_share))
        )
    providers = list(PROVIDER_SHARE)
    provider_cum = _cumulative(list(PROVIDER_SHARE.values()))
    keys: list[KeySpec] = []
    for n, a in enumerate(key_accounts):
        # Most keys are for one provider; one in eight may call any of them.
        provider = (
            None if rng.random() < 0.125 else providers[bisect.bisect(provider_cum, rng.random())]
        )
        allowed = [provider] if provider else providers
        catalogue = [
            (p, m, share * PROVIDER_SHARE[p], i, o)
            for p in allowed
            for m, share, i, o in LLM_MODELS[p]
        ]
        picked = rng.sample(catalogue, k=min(len(catalogue), rng.randint(2, 4)))
        cum = _cumulative([w * rng.uniform(0.3, 1.0) for _, _, w, _, _ in picked])
        models = [(p, m, c, i, o) for (p, m, _, i, o), c in zip(picked, cum, strict=True)]
        agent_id = rng.choice(agents[a]) if rng.random() < 0.4 else None
        key_agents: list[uuid.UUID | None] = (
            [agent_id] if agent_id else [None, *rng.sample(agents[a], k=min(2, len(agents[a])))]
        )
        keys.append(KeySpec(uid(), a, f"key-{n:03d}", provider, agent_id, models, key_agents))
    # Traffic per key: the account's share, split Zipf-like over its keys.
    key_weights = []
    for a in range(shape.accounts):
        mine = [k for k in keys if k.account == a]
        zipf = [1 / (i + 1) ** 1.1 for i in range(len(mine))]
        total = sum(zipf)
        key_weights += [
            (k, account_weights[a] * z / total) for k, z in zip(mine, zipf, strict=True)
        ]
    keys = [k for k, _ in key_weights]
    return Entities(
        account_ids=account_ids,
        agents=agents,
        vms=vms,
        keys=keys,
        key_cum=_cumulative([w for _, w in key_weights]),
        account_cum=_cumulative(account_weights),
    )


def _entity_rows(shape: Shape, entities: Entities) -> dict[Any, list[dict[str, Any]]]:
    accounts = [
        {
            "id": a,
            "name": "Big Corp" if i == 0 else f"account-{i:02d}",
            "clerk_org_id": f"org_bench_{i:02d}",
            "owner_user_id": None,
        }
        for i, a in enumerate(entities.account_ids)
    ]
    agents = [
        {"id": ag, "account_id": entities.account_ids[a], "name": f"agent-{a:02d}-{j}"}
        for a, ids in enumerate(entities.agents)
        for j, ag in enumerate(ids)
    ]
    vms = [
        {
            "id": vm,
            "account_id": entities.account_ids[a],
            "name": f"vm-{a:02d}-{j}",
            "cents_per_hour_micros": rate,
        }
        for a, ids in enumerate(entities.vms)
        for j, (vm, rate) in enumerate(ids)
    ]
    keys = [
        {
            "id": k.id,
            "account_id": entities.account_ids[k.account],
            "name": k.name,
            "provider": k.provider,
            "agent_id": k.agent_id,
            "spend_cap_micros": 500_000 * 1_000_000,
            "status": "active",
        }
        for k in entities.keys
    ]
    return {Account: accounts, Agent: agents, PlainVm: vms, VirtualKey: keys}


def _days() -> list[date]:
    return [FIRST_DAY + timedelta(days=i) for i in range((LAST_DAY - FIRST_DAY).days + 1)]


def _day_counts(total: int, rng: random.Random) -> list[int]:
    days = _days()
    # Weekends are quieter and traffic grows a little over the two months.
    weights = [
        (0.6 if d.weekday() >= 5 else 1.0) * (1 + 0.3 * i / len(days)) for i, d in enumerate(days)
    ]
    weights = [w * rng.uniform(0.9, 1.1) for w in weights]
    scale = total / sum(weights)
    counts = [int(w * scale) for w in weights]
    counts[-1] += total - sum(counts)
    return counts


def generate(shape: Shape, entities: Entities) -> Iterator[Record]:
    """Records in roughly time order, one day at a time (about 3 % are voice and compute)."""
    rng = random.Random(f"events-{shape.seed}")
    hour_cum = _cumulative(HOUR_WEIGHTS)
    voice_cum = _cumulative([w for _, w in VOICE_MODELS])
    keys, key_cum = entities.keys, entities.key_cum
    seq = 0
    for day, count in zip(_days(), _day_counts(shape.events, rng), strict=True):
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        # Sorted offsets within the day, drawn from the hourly rhythm.
        offsets = sorted(
            (bisect.bisect(hour_cum, rng.random()) + rng.random()) * 3600.0 for _ in range(count)
        )
        picks = rng.choices(range(len(keys)), cum_weights=key_cum, k=count)
        rand = rng.random
        for offset, k in zip(offsets, picks, strict=True):
            key = keys[k]
            r = rand()
            choice = key.models[-1]
            for candidate in key.models:
                if r <= candidate[2]:
                    choice = candidate
                    break
            provider, model, _, tokens_in, tokens_out = choice
            seq += 1
            spread = 0.2 + 1.6 * rand()
            agent = (
                key.agents[0] if len(key.agents) == 1 else key.agents[int(rand() * len(key.agents))]
            )
            yield LlmRecord(
                id=f"ev{shape.seed}-{seq:010d}",
                ts=datetime.fromtimestamp(midnight + offset, UTC),
                key_id=key.id,
                provider=provider,
                model=model,
                input_tokens=int(tokens_in * spread) + 1,
                output_tokens=int(tokens_out * spread * (0.5 + rand())),
                agent_id=agent,
                status="ok" if rand() > 0.004 else "error",
            )
        yield from _voice(
            shape, entities, day, midnight, int(count * shape.voice_per_llm), rng, voice_cum
        )
        yield from _compute(entities, day, midnight, rng)


def _voice(
    shape: Shape,
    entities: Entities,
    day: date,
    midnight: float,
    count: int,
    rng: random.Random,
    voice_cum: list[float],
) -> Iterator[Record]:
    for n in range(count):
        a = bisect.bisect(entities.account_cum, rng.random())
        a = min(a, len(entities.account_ids) - 1)
        agents = entities.agents[a]
        yield VoiceRecord(
            id=f"vo{shape.seed}-{day.isoformat()}-{n:07d}",
            ts=datetime.fromtimestamp(midnight + rng.random() * 86_400, UTC),
            account_id=entities.account_ids[a],
            voice_model=VOICE_MODELS[bisect.bisect(voice_cum, rng.random())][0],
            characters=int(rng.lognormvariate(6.5, 0.8)) + 1,
            agent_id=rng.choice(agents) if rng.random() < 0.8 else None,
        )


def _compute(
    entities: Entities, day: date, midnight: float, rng: random.Random
) -> Iterator[Record]:
    last = day == LAST_DAY
    for a, agents in enumerate(entities.agents):
        account = entities.account_ids[a]
        for j, agent in enumerate(agents):
            # An agent runs a stretch of the day, then pauses; some stretches cross midnight.
            start = midnight + rng.uniform(0, 14) * 3600
            run = rng.uniform(2, 12) * 3600
            pause = rng.uniform(0.5, 8) * 3600
            ident = f"cp-{day.isoformat()}-{a:02d}-{j:02d}"
            yield ComputeRecord(
                id=f"{ident}-r",
                account_id=account,
                agent_id=agent,
                start=datetime.fromtimestamp(start, UTC),
                end=datetime.fromtimestamp(start + run, UTC),
                cents_per_hour_micros=8_000_000,
                state="running",
            )
            open_now = last and j == 0  # the last day leaves one paused interval per account open
            yield ComputeRecord(
                id=f"{ident}-p",
                account_id=account,
                agent_id=agent,
                start=datetime.fromtimestamp(start + run, UTC),
                end=None if open_now else datetime.fromtimestamp(start + run + pause, UTC),
                cents_per_hour_micros=1_000_000,
                state="paused",
            )
        for vm, rate in entities.vms[a]:
            if rng.random() < 0.5:
                start = midnight + rng.uniform(0, 20) * 3600
                yield ComputeRecord(
                    id=f"vm-{day.isoformat()}-{vm.hex[:8]}",
                    account_id=account,
                    plain_vm_id=vm,
                    start=datetime.fromtimestamp(start, UTC),
                    end=datetime.fromtimestamp(start + rng.uniform(1, 30) * 3600, UTC),
                    cents_per_hour_micros=rate,
                )


# Writing and caching


@dataclass(slots=True)
class IngestStats:
    """P3: events written through Ingestor.record, and the time spent inside it only."""

    engine: str
    batch_size: int
    events: int = 0
    llm_events: int = 0
    seconds: float = 0.0
    generate_seconds: float = 0.0
    batches: int = 0
    slowest_batch_s: float = 0.0
    # Events/s over each tenth of the run: shows whether ingest slows as the tables grow.
    by_tenth: list[float] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


async def write_entities(engine: AsyncEngine, shape: Shape, entities: Entities) -> None:
    async with write_transaction(engine) as conn:
        for model, rows in _entity_rows(shape, entities).items():
            if rows:
                await conn.execute(table_of(model).insert(), rows)


async def ingest(
    engine: AsyncEngine,
    engine_name: str,
    shape: Shape,
    entities: Entities,
    batch_size: int,
    progress: bool = True,
    profile_path: Path | None = None,
    max_records: int | None = None,
) -> IngestStats:
    ingestor = Ingestor(engine)
    stats = IngestStats(engine_name, batch_size)
    total = max_records or shape.events * (1 + shape.voice_per_llm)
    tenth_mark, tenth_events, tenth_seconds = total / 10, 0, 0.0
    profiler = None
    if profile_path is not None:
        import cProfile

        profiler = cProfile.Profile()
    started = time.perf_counter()
    last_print = started
    records = generate(shape, entities)
    if max_records is not None:
        records = islice(records, max_records)
    while True:
        t0 = time.perf_counter()
        batch = list(islice(records, batch_size))
        t1 = time.perf_counter()
        stats.generate_seconds += t1 - t0
        if not batch:
            break
        if profiler:
            profiler.enable()
        await ingestor.record(batch)
        if profiler:
            profiler.disable()
        spent = time.perf_counter() - t1
        stats.seconds += spent
        stats.slowest_batch_s = max(stats.slowest_batch_s, spent)
        stats.batches += 1
        stats.events += len(batch)
        stats.llm_events += sum(1 for r in batch if isinstance(r, LlmRecord))
        tenth_events += len(batch)
        tenth_seconds += spent
        if stats.events >= tenth_mark * (len(stats.by_tenth) + 1) and len(stats.by_tenth) < 9:
            stats.by_tenth.append(tenth_events / tenth_seconds)
            tenth_events, tenth_seconds = 0, 0.0
        now = time.perf_counter()
        if progress and now - last_print > 10:
            last_print = now
            print(
                f"  [{engine_name}] {stats.events:,} events, {stats.events_per_s:,.0f}/s in ingest, "
                f"{now - started:,.0f} s elapsed",
                flush=True,
            )
    if tenth_seconds:
        stats.by_tenth.append(tenth_events / tenth_seconds)
    if profiler and profile_path:
        import pstats

        with profile_path.open("w") as out:
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
    return stats


# Datasets on disk: a SQLite file, a PostgreSQL database; each with a JSON sidecar of its facts


@dataclass(slots=True)
class Dataset:
    engine_name: str
    url: str
    shape: Shape
    entities: Entities
    ingest: IngestStats | None
    generated_at: str
    reused: bool

    @property
    def big_account(self) -> uuid.UUID:
        return self.entities.big_account


def _meta_path(engine_name: str, shape: Shape) -> Path:
    return BENCH_DIR / f"dataset-{engine_name}-{shape.tag}.json"


def with_database(url: str, database: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{database}"


async def admin_sql(admin_url: str, statement: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


async def _database_exists(admin_url: str, name: str) -> bool:
    engine = create_async_engine(admin_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
            )
            return found.first() is not None
    finally:
        await engine.dispose()


async def _upgraded_llm_count(url: str) -> int:
    """Bring a cached dataset to the newest schema (a later migration may add an index the
    service relies on), then count its LLM events."""
    engine = make_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as conn:
            return int((await conn.execute(text("SELECT count(*) FROM llm_event"))).scalar_one())
    finally:
        await engine.dispose()


def prepare_dir() -> None:
    BENCH_DIR.mkdir(exist_ok=True)


def fresh_path(path: Path) -> Path:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


async def ensure_dataset(
    engine_name: str,
    shape: Shape,
    *,
    postgres_admin_url: str,
    batch_size: int = DEFAULT_BATCH,
    regenerate: bool = False,
    profile: bool = False,
) -> Dataset:
    """The cached database for (engine, events, seed), generated first when missing."""
    prepare_dir()
    entities = build_entities(shape)
    meta_path = _meta_path(engine_name, shape)
    if engine_name == "sqlite":
        final = BENCH_DIR / f"sqlite_{shape.tag}.db"
        url = f"sqlite+aiosqlite:///{final}"
        exists = final.exists()
    else:
        name = f"crabglamp_bench_{shape.tag}"
        url = with_database(postgres_admin_url, name)
        exists = await _database_exists(postgres_admin_url, name)
    if exists and meta_path.exists() and not regenerate:
        meta = json.loads(meta_path.read_text())
        if await _upgraded_llm_count(url) == meta["llm_events"]:
            ingest_stats = IngestStats(**meta["ingest"]) if meta.get("ingest") else None
            return Dataset(
                engine_name, url, shape, entities, ingest_stats, meta["generated_at"], True
            )
        print(f"  [{engine_name}] cached dataset does not match its sidecar; regenerating")

    # Build under a temporary name and move it into place once complete.
    if engine_name == "sqlite":
        partial = fresh_path(BENCH_DIR / f"sqlite_{shape.tag}.partial.db")
        build_url = f"sqlite+aiosqlite:///{partial}"
    else:
        partial_name = f"crabglamp_bench_{shape.tag}_partial"
        await admin_sql(
            postgres_admin_url, f'DROP DATABASE IF EXISTS "{partial_name}" WITH (FORCE)'
        )
        await admin_sql(postgres_admin_url, f'CREATE DATABASE "{partial_name}"')
        build_url = with_database(postgres_admin_url, partial_name)
    engine = make_engine(build_url)
    try:
        await upgrade(engine)
        await write_entities(engine, shape, entities)
        print(
            f"  [{engine_name}] generating {shape.events:,} LLM events (seed {shape.seed}), batches of {batch_size:,}",
            flush=True,
        )
        stats = await ingest(
            engine,
            engine_name,
            shape,
            entities,
            batch_size,
            profile_path=BENCH_DIR / f"profile-ingest-{engine_name}-{shape.tag}.txt"
            if profile
            else None,
        )
        if engine_name == "sqlite":
            async with engine.connect() as conn:
                await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            # Statistics and visibility maps, as autovacuum would leave them after a bulk load.
            maint = create_async_engine(build_url, isolation_level="AUTOCOMMIT")
            async with maint.connect() as conn:
                await conn.execute(text("VACUUM ANALYZE"))
            await maint.dispose()
    finally:
        await engine.dispose()
    if engine_name == "sqlite":
        final.unlink(missing_ok=True)
        shutil.move(str(partial), str(final))
    else:
        await admin_sql(postgres_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin_sql(postgres_admin_url, f'ALTER DATABASE "{partial_name}" RENAME TO "{name}"')
    generated_at = datetime.now(UTC).isoformat(timespec="seconds")
    meta = {
        "engine": engine_name,
        "shape": asdict(shape),
        "llm_events": stats.llm_events,
        "ingest": asdict(stats),
        "generated_at": generated_at,
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return Dataset(engine_name, url, shape, entities, stats, generated_at, False)


def dataset_facts(dataset: Dataset) -> dict[str, Any]:
    e = dataset.entities
    return {
        "llm_events": dataset.ingest.llm_events if dataset.ingest else None,
        "accounts": len(e.account_ids),
        "keys": len(e.keys),
        "big_account_keys": sum(1 for k in e.keys if k.account == 0),
        "agents": sum(len(a) for a in e.agents),
        "plain_vms": sum(len(v) for v in e.vms),
        "models": sum(len(m) for m in LLM_MODELS.values()),
        "days": f"{FIRST_DAY} .. {LAST_DAY}",
        "big_account_share": dataset.shape.big_account_share,
    }
