"""After importing a bundle, the usage service's numbers equal an independent sum of the bundle's
lines, to the micro-cent: for whole months, date ranges crossing a month end, every filter and
platform-wide, in every breakdown (daily, per model, per agent, per key, per VM).

The expected numbers are computed here from the JSON lines alone, with Fractions: prices from
the bundle's own price lines, compute intervals split at UTC midnights with cumulative half-up
rounding (so a day's piece is rounded(cost up to its end) - rounded(cost up to its start)).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Protocol, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

from crabglamp.bundle import apply_bundle, parse_bundle
from crabglamp.db import make_engine, read_transaction
from crabglamp.ingest.ingestor import Ingestor
from crabglamp.periods import Period, parse_month
from crabglamp.prices import load_price_book
from crabglamp.usage.query import UsageQuery
from crabglamp.usage.results import ComputeUsage, LlmUsage, Usage, VoiceUsage
from crabglamp.usage.service import usage

_T = TypeVar("_T")


def _id(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x5EED << 64 | n)


ACME, SOLO = _id(1), _id(2)
AGENTS = {_id(11): ACME, _id(12): ACME, _id(13): SOLO}
VMS = {_id(21): ACME, _id(22): SOLO}
# key → (account, provider, agent)
KEYS = {
    _id(31): (ACME, "openai", _id(11)),
    _id(32): (ACME, "anthropic", None),
    _id(33): (ACME, None, None),
    _id(34): (SOLO, "openai", None),
    _id(35): (ACME, "openai", None),  # never used by an event: a quiet key
}
MODELS = [("openai", "gpt-4o-mini"), ("anthropic", "claude-3-haiku"), ("hypo", "hyp-llm")]
VOICE_MODELS = ["tts-1", "hyp-voice"]
# Prices of the models that events may leave unpriced, as the bundle states them.
LLM_PRICES = [(date(2026, 10, 1), "123.456789", "654.321"), (date(2026, 11, 1), "200", "0.5")]
VOICE_PRICES = [(date(2026, 10, 1), "1500.25"), (date(2026, 10, 31), "1700")]
WINDOW_START = datetime(2026, 10, 27, tzinfo=UTC)
WINDOW_US = 10 * 86_400_000_000  # events fall from Oct 27 to Nov 5
NOW = datetime(2026, 11, 20, 6, 30, tzinfo=UTC)  # open intervals accrue until here
OFFSETS = [0, 0, 330, -480, 840, -720]  # minutes east of UTC


def _entities() -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = [
        {"type": "account", "id": ACME, "name": "Acme", "clerkOrgId": "org_acme"},
        {"type": "account", "id": SOLO, "name": "Solo", "ownerUserId": "user_solo"},
    ]
    lines += [
        {"type": "agent", "id": a, "accountId": acc, "name": f"agent-{a.int & 0xFF}"}
        for a, acc in AGENTS.items()
    ]
    lines += [
        {
            "type": "plainVm",
            "id": v,
            "accountId": acc,
            "name": f"vm-{v.int & 0xFF}",
            "centsPerHour": 3,
        }
        for v, acc in VMS.items()
    ]
    lines += [
        {
            "type": "key",
            "id": k,
            "accountId": acc,
            "name": f"key-{k.int & 0xFF}",
            "provider": provider,
            "agentId": agent,
            "spendCapCents": 50000,
        }
        for k, (acc, provider, agent) in KEYS.items()
    ]
    lines += [
        {
            "type": "price",
            "provider": "hypo",
            "model": "hyp-llm",
            "kind": "llm",
            "validFrom": day.isoformat(),
            "inputCentsPerMTok": Decimal(p_in),
            "outputCentsPerMTok": Decimal(p_out),
        }
        for day, p_in, p_out in LLM_PRICES
    ]
    lines += [
        {
            "type": "price",
            "provider": "hypo",
            "model": "hyp-voice",
            "kind": "voice",
            "validFrom": day.isoformat(),
            "centsPerMChar": Decimal(p),
        }
        for day, p in VOICE_PRICES
    ]
    return lines


def _to_line(obj: dict[str, Any]) -> str:
    def value(v: Any) -> str:
        if isinstance(v, Decimal):
            return format(v, "f")
        return json.dumps(str(v) if isinstance(v, uuid.UUID) else v)

    return "{" + ",".join(f"{json.dumps(k)}:{value(v)}" for k, v in obj.items()) + "}"


# Drawing bundles: the same builder for hypothesis and for a fixed seed


class Draw(Protocol):
    def int(self, low: int, high: int) -> int: ...

    def pick(self, options: Sequence[_T]) -> _T: ...


class RandomDraw:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)

    def int(self, low: int, high: int) -> int:
        return self.random.randint(low, high)

    def pick(self, options: Sequence[_T]) -> _T:
        return self.random.choice(options)


class HypothesisDraw:
    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def int(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def pick(self, options: Sequence[_T]) -> _T:
        return self.data.draw(st.sampled_from(options))


def _moment(d: Draw) -> str:
    moment = WINDOW_START + timedelta(microseconds=d.int(0, WINDOW_US))
    offset = d.pick(OFFSETS)
    shown = moment.astimezone(timezone(timedelta(minutes=offset))).isoformat()
    return shown.replace("+00:00", "Z") if offset == 0 and d.int(0, 1) else shown


def _money(d: Draw, most_micros: int) -> Decimal:
    return Decimal(d.int(0, most_micros)).scaleb(-6)


def make_bundle(d: Draw, n_llm: int, n_voice: int, n_compute: int) -> list[str]:
    events: list[dict[str, Any]] = []
    for i in range(n_llm):
        key = d.pick(list(KEYS)[:4])
        account = KEYS[key][0]
        provider, model = d.pick(MODELS)
        line = {
            "type": "llm",
            "id": f"llm-{i}",
            "ts": _moment(d),
            "keyId": key,
            "agentId": d.pick([None, *(a for a, acc in AGENTS.items() if acc == account)]),
            "provider": provider,
            "model": model,
            "inputTokens": d.int(0, 2_000_000),
            "outputTokens": d.int(0, 300_000),
        }
        if model != "hyp-llm" or d.int(0, 1):
            line["costCents"] = _money(d, 5_000_000_000)
        events.append(line)
    for i in range(n_voice):
        account = d.pick([ACME, SOLO])
        voice_model = d.pick(VOICE_MODELS)
        line = {
            "type": "voice",
            "id": f"voice-{i}",
            "ts": _moment(d),
            "accountId": account,
            "agentId": d.pick([None, *(a for a, acc in AGENTS.items() if acc == account)]),
            "voiceModel": voice_model,
            "characters": d.int(0, 50_000),
        }
        if voice_model != "hyp-voice" or d.int(0, 1):
            line["costCents"] = _money(d, 500_000_000)
        events.append(line)
    for i in range(n_compute):
        account = d.pick([ACME, SOLO])
        owner = d.pick(["agent", "vm", "none"])
        start = _moment(d)
        start_dt = datetime.fromisoformat(start)
        end = start_dt + timedelta(microseconds=d.int(0, 3 * 86_400_000_000))
        events.append(
            {
                "type": "compute",
                "id": f"compute-{i}",
                "accountId": account,
                "agentId": d.pick([a for a, acc in AGENTS.items() if acc == account])
                if owner == "agent"
                else None,
                "plainVmId": d.pick([v for v, acc in VMS.items() if acc == account])
                if owner == "vm"
                else None,
                "state": d.pick(["running", "paused"]),
                "start": start,
                "end": None if d.int(0, 4) == 0 else end.isoformat(),
                "centsPerHour": _money(d, 100_000_000),
            }
        )
    # Some events are sent twice: they count once.
    repeats = [events[d.int(0, len(events) - 1)] for _ in range(d.int(0, 3))] if events else []
    return [_to_line(obj) for obj in [*_entities(), *events, *repeats]]


# The independent sums


def _half_up(value: Fraction) -> int:
    return math.floor(value + Fraction(1, 2))


def _price_at(
    prices: Sequence[tuple[date, Fraction, Fraction]], day: date
) -> tuple[Fraction, Fraction]:
    valid = [p for p in prices if p[0] <= day]
    return max(valid)[1:]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass
class Expected:
    """Every billable piece of the bundle, per UTC day, computed from its lines alone."""

    llm: list[tuple[uuid.UUID, date, uuid.UUID, uuid.UUID | None, str, str, int, int, int]] = field(
        default_factory=list
    )
    voice: list[tuple[uuid.UUID, date, uuid.UUID | None, str, int, int]] = field(
        default_factory=list
    )
    compute: list[tuple[uuid.UUID, date, uuid.UUID | None, uuid.UUID | None, str, int, int]] = (
        field(default_factory=list)
    )
    names: dict[uuid.UUID, str] = field(default_factory=dict)
    keys: dict[uuid.UUID, tuple[uuid.UUID, str | None]] = field(default_factory=dict)

    @classmethod
    def of(cls, lines: Sequence[str]) -> Expected:
        expected = cls()
        llm_prices: list[tuple[date, Fraction, Fraction]] = []
        voice_prices: list[tuple[date, Fraction, Fraction]] = []
        seen: set[tuple[str, str]] = set()
        for text in lines:
            o = json.loads(text, parse_float=Decimal)
            kind = o["type"]
            if kind in ("agent", "plainVm", "key"):
                expected.names[uuid.UUID(o["id"])] = o["name"]
            if kind == "key":
                expected.keys[uuid.UUID(o["id"])] = (uuid.UUID(o["accountId"]), o["provider"])
            if kind == "price":
                day = date.fromisoformat(o["validFrom"])
                if o["kind"] == "llm":
                    llm_prices.append(
                        (day, Fraction(o["inputCentsPerMTok"]), Fraction(o["outputCentsPerMTok"]))
                    )
                else:
                    voice_prices.append((day, Fraction(o["centsPerMChar"]), Fraction(0)))
            if kind not in ("llm", "voice", "compute") or (kind, o["id"]) in seen:
                continue
            seen.add((kind, o["id"]))
            agent = uuid.UUID(o["agentId"]) if o.get("agentId") else None
            if kind == "llm":
                moment, key = _utc(o["ts"]), uuid.UUID(o["keyId"])
                if "costCents" in o:
                    cost = _half_up(Fraction(o["costCents"]) * 10**6)
                else:
                    # Per million tokens in cents is micro-cents per token; the sum rounded once.
                    p_in, p_out = _price_at(llm_prices, moment.date())
                    cost = _half_up(o["inputTokens"] * p_in + o["outputTokens"] * p_out)
                expected.llm.append(
                    (
                        expected.keys[key][0],
                        moment.date(),
                        key,
                        agent,
                        o["provider"],
                        o["model"],
                        cost,
                        o["inputTokens"],
                        o["outputTokens"],
                    )
                )
            elif kind == "voice":
                moment = _utc(o["ts"])
                if "costCents" in o:
                    cost = _half_up(Fraction(o["costCents"]) * 10**6)
                else:
                    cost = _half_up(o["characters"] * _price_at(voice_prices, moment.date())[0])
                expected.voice.append(
                    (
                        uuid.UUID(o["accountId"]),
                        moment.date(),
                        agent,
                        o["voiceModel"],
                        cost,
                        o["characters"],
                    )
                )
            else:
                vm = uuid.UUID(o["plainVmId"]) if o.get("plainVmId") else None
                start = _utc(o["start"])
                end = _utc(o["end"]) if o["end"] else NOW
                micros_per_us = Fraction(o["centsPerHour"]) * 10**6 / 3_600_000_000
                cursor = start
                while cursor < end:
                    piece_end = min(
                        end, datetime.combine(cursor.date() + timedelta(days=1), time(), UTC)
                    )
                    before, after = _us(cursor - start), _us(piece_end - start)
                    cost = _half_up(after * micros_per_us) - _half_up(before * micros_per_us)
                    expected.compute.append(
                        (
                            uuid.UUID(o["accountId"]),
                            cursor.date(),
                            agent,
                            vm,
                            o["state"],
                            cost,
                            after - before,
                        )
                    )
                    cursor = piece_end
        return expected

    def llm_usage(self, q: UsageQuery) -> dict[str, Any]:
        rows = [
            r
            for r in self.llm
            if _in_scope(q, r[0], r[1], r[3])
            and (q.key_ids is None or r[2] in q.key_ids)
            and q.provider in (None, r[4])
            and q.model in (None, r[5])
        ]
        daily: dict[date, dict[tuple[str, str], list[int]]] = {d: {} for d in q.period.days}
        models: dict[tuple[str, str], list[int]] = {}
        agents: dict[uuid.UUID | None, list[int]] = {}
        keys: dict[uuid.UUID, list[int]] = {}
        for _acc, day, key, agent, provider, model, cost, tokens_in, tokens_out in rows:
            for bucket in (daily[day], models):
                _add(
                    bucket.setdefault((provider, model), [0, 0, 0, 0]),
                    cost,
                    1,
                    tokens_in,
                    tokens_out,
                )
            _add(agents.setdefault(agent, [0, 0]), cost, 1)
            _add(keys.setdefault(key, [0, 0]), cost, 1)
        if q.agent_id is None and q.model is None:
            # Without an agent or model filter, a key in scope that did not spend shows at zero.
            for key, (acc, provider) in self.keys.items():
                if (
                    (q.account_ids is None or acc in q.account_ids)
                    and (q.key_ids is None or key in q.key_ids)
                    and q.provider in (None, provider)
                ):
                    keys.setdefault(key, [0, 0])
        return {
            "total": sum(r[6] for r in rows),
            "daily": {
                d: (sum(m[0] for m in ms.values()), sum(m[1] for m in ms.values()), _tuples(ms))
                for d, ms in daily.items()
            },
            "models": _tuples(models),
            "agents": {a: (self.names.get(a) if a else None, *v) for a, v in agents.items()},
            "keys": {k: (self.names[k], *v) for k, v in keys.items()},
            "has_keys": any(
                q.account_ids is None or acc in q.account_ids for acc, _p in self.keys.values()
            ),
        }

    def voice_usage(self, q: UsageQuery) -> dict[str, Any]:
        rows = [
            r
            for r in self.voice
            if _in_scope(q, r[0], r[1], r[2]) and q.voice_model in (None, r[3])
        ]
        daily: dict[date, dict[str, list[int]]] = {d: {} for d in q.period.days}
        models: dict[str, list[int]] = {}
        agents: dict[uuid.UUID | None, list[int]] = {}
        for _acc, day, agent, voice_model, cost, characters in rows:
            for bucket in (daily[day], models):
                _add(bucket.setdefault(voice_model, [0, 0, 0]), cost, characters, 1)
            _add(agents.setdefault(agent, [0, 0]), cost, characters)
        return {
            "total": sum(r[4] for r in rows),
            "characters": sum(r[5] for r in rows),
            "daily": {
                d: (sum(m[0] for m in ms.values()), sum(m[1] for m in ms.values()), _tuples(ms))
                for d, ms in daily.items()
            },
            "models": _tuples(models),
            "agents": {a: (self.names.get(a) if a else None, *v) for a, v in agents.items()},
            "has_voice_usage": bool(rows),
        }

    def compute_usage(self, q: UsageQuery) -> dict[str, Any]:
        rows = [r for r in self.compute if _in_scope(q, r[0], r[1], r[2])]
        daily: dict[date, tuple[dict[uuid.UUID | None, list[int]], dict[uuid.UUID, list[int]]]] = {
            d: ({}, {}) for d in q.period.days
        }
        agents: dict[uuid.UUID | None, list[int]] = {}
        vms: dict[uuid.UUID, list[int]] = {}
        for _acc, day, agent, vm, state, cost, duration in rows:
            day_agents, day_vms = daily[day]
            if vm is not None:
                for vm_bucket in (day_vms, vms):
                    _add(vm_bucket.setdefault(vm, [0, 0]), cost, duration)
                continue
            running = state == "running"
            for agent_bucket in (day_agents, agents):
                _add(
                    agent_bucket.setdefault(agent, [0, 0, 0, 0]),
                    cost * running,
                    cost * (not running),
                    duration * running,
                    duration * (not running),
                )
        return {
            "total": sum(r[5] for r in rows),
            "daily": {
                d: (
                    sum(a[0] + a[1] for a in day_agents.values()),
                    sum(v[0] for v in day_vms.values()),
                    _named(self.names, day_agents),
                    _named(self.names, day_vms),
                )
                for d, (day_agents, day_vms) in daily.items()
            },
            "agents": _named(self.names, agents),
            "plain_vms": _named(self.names, vms),
        }


def _in_scope(q: UsageQuery, account: uuid.UUID, day: date, agent: uuid.UUID | None) -> bool:
    return (
        q.period.start <= day <= q.period.end
        and (q.account_ids is None or account in q.account_ids)
        and (q.agent_id is None or agent == q.agent_id)
    )


def _add(acc: list[int], *values: int) -> None:
    for i, v in enumerate(values):
        acc[i] += v


def _tuples(bucket: dict[Any, list[int]]) -> dict[Any, tuple[int, ...]]:
    return {k: tuple(v) for k, v in bucket.items()}


def _named(names: dict[uuid.UUID, str], bucket: dict[Any, list[int]]) -> dict[Any, tuple[Any, ...]]:
    return {k: (names.get(k) if k else None, *v) for k, v in bucket.items()}


# What the service says, in the same shape


def _unique(items: Sequence[Any], key: Callable[[Any], Any]) -> dict[Any, Any]:
    found = {key(item): item for item in items}
    assert len(found) == len(items), f"an entry appears twice: {items}"
    return found


def llm_shape(u: LlmUsage) -> dict[str, Any]:
    def model_tuple(m: Any) -> tuple[int, ...]:
        return (m.total_micros, m.request_count, m.input_tokens, m.output_tokens)

    return {
        "total": u.total_micros,
        "daily": {
            d.date: (
                d.total_micros,
                d.request_count,
                {
                    k: model_tuple(m)
                    for k, m in _unique(d.models, lambda m: (m.provider, m.model)).items()
                },
            )
            for d in u.daily
        },
        "models": {
            k: model_tuple(m) for k, m in _unique(u.models, lambda m: (m.provider, m.model)).items()
        },
        "agents": {
            k: (a.agent_name, a.total_micros, a.request_count)
            for k, a in _unique(u.agents, lambda a: a.agent_id).items()
        },
        "keys": {
            k: (key.key_name, key.total_micros, key.request_count)
            for k, key in _unique(u.keys, lambda key: key.key_id).items()
        },
        "has_keys": u.has_keys,
    }


def voice_shape(u: VoiceUsage) -> dict[str, Any]:
    def model_tuple(m: Any) -> tuple[int, ...]:
        return (m.total_micros, m.characters, m.request_count)

    return {
        "total": u.total_micros,
        "characters": u.total_characters,
        "daily": {
            d.date: (
                d.total_micros,
                d.characters,
                {k: model_tuple(m) for k, m in _unique(d.models, lambda m: m.voice_model).items()},
            )
            for d in u.daily
        },
        "models": {
            k: model_tuple(m) for k, m in _unique(u.models, lambda m: m.voice_model).items()
        },
        "agents": {
            k: (a.agent_name, a.total_micros, a.characters)
            for k, a in _unique(u.agents, lambda a: a.agent_id).items()
        },
        "has_voice_usage": u.has_voice_usage,
    }


def compute_shape(u: ComputeUsage) -> dict[str, Any]:
    def agents(items: Sequence[Any]) -> dict[Any, tuple[Any, ...]]:
        return {
            k: (a.agent_name, a.running_micros, a.paused_micros, a.running_us, a.paused_us)
            for k, a in _unique(items, lambda a: a.agent_id).items()
        }

    def vms(items: Sequence[Any]) -> dict[Any, tuple[Any, ...]]:
        return {
            k: (v.plain_vm_name, v.cost_micros, v.duration_us)
            for k, v in _unique(items, lambda v: v.plain_vm_id).items()
        }

    return {
        "total": u.total_micros,
        "daily": {
            d.date: (d.agent_micros, d.plain_vm_micros, agents(d.agents), vms(d.plain_vms))
            for d in u.daily
        },
        "agents": agents(u.agents),
        "plain_vms": vms(u.plain_vms),
    }


NOVEMBER, OCTOBER = parse_month("2026-11"), parse_month("2026-10")
ACROSS = Period(date(2026, 10, 29), date(2026, 11, 2))


def queries() -> list[tuple[UsageQuery, UsageQuery | None]]:
    """Each query, and for one that filters a single axis the same query without that filter."""
    acme = (ACME,)
    plain = [
        UsageQuery(NOVEMBER, acme),
        UsageQuery(OCTOBER, acme),
        UsageQuery(ACROSS, acme),
        UsageQuery(ACROSS, (SOLO,)),
        UsageQuery(ACROSS, None),
        UsageQuery(NOVEMBER, None),
        UsageQuery(ACROSS, (ACME, SOLO)),
    ]
    narrowed = [
        UsageQuery(ACROSS, acme, agent_id=_id(11)),
        UsageQuery(ACROSS, acme, key_ids=(_id(31),)),
        UsageQuery(ACROSS, acme, key_ids=(_id(32), _id(35))),
        UsageQuery(ACROSS, acme, provider="anthropic"),
        UsageQuery(ACROSS, None, provider="openai"),
        UsageQuery(ACROSS, acme, model="hyp-llm"),
        UsageQuery(NOVEMBER, None, model="gpt-4o-mini"),
        UsageQuery(ACROSS, acme, voice_model="hyp-voice"),
        UsageQuery(ACROSS, None, agent_id=_id(13), voice_model="tts-1", model="claude-3-haiku"),
    ]
    return [(q, None) for q in plain] + [
        (q, UsageQuery(q.period, q.account_ids, agent_id=q.agent_id)) for q in narrowed
    ]


async def _reset(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name == "price":
                await conn.execute(delete(table).where(table.c.model.in_(["hyp-llm", "hyp-voice"])))
            else:
                await conn.execute(delete(table))


async def _import_and_compare(engine: AsyncEngine, lines: list[str]) -> None:
    await _reset(engine)
    async with read_transaction(engine) as conn:
        ingestor = Ingestor(engine, await load_price_book(conn))
    report = await apply_bundle(engine, ingestor, parse_bundle(lines), skip_invalid=False)
    assert report.ok, report.problems[:5]
    expected = Expected.of(lines)
    async with read_transaction(engine) as conn:
        for query, without in queries():
            found: Usage = await usage(conn, query, now=NOW)
            assert [d.date for d in found.llm.daily] == query.period.days
            assert llm_shape(found.llm) == expected.llm_usage(query), query
            assert voice_shape(found.voice) == expected.voice_usage(query), query
            assert compute_shape(found.compute) == expected.compute_usage(query), query
            if without is not None:
                # An axis is never narrowed by another axis's filter.
                other: Usage = await usage(conn, without, now=NOW)
                if query.voice_model is None:
                    assert found.voice == other.voice
                if query.model is None and query.provider is None and query.key_ids is None:
                    assert found.llm == other.llm
                assert found.compute == other.compute


def _run(db_url: str, lines: list[str]) -> None:
    async def main() -> None:
        engine = make_engine(db_url)
        try:
            await _import_and_compare(engine, lines)
        finally:
            await engine.dispose()

    asyncio.run(main())


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_usage_after_import_equals_the_bundles_own_sums(db_url: str, data: st.DataObject) -> None:
    draw = HypothesisDraw(data)
    lines = make_bundle(draw, draw.int(0, 25), draw.int(0, 10), draw.int(0, 8))
    _run(db_url, lines)


def test_usage_after_importing_a_larger_bundle_equals_its_sums(db_url: str) -> None:
    _run(db_url, make_bundle(RandomDraw(2026), 3000, 600, 300))


def test_the_independent_sums_split_compute_at_midnight_with_cumulative_rounding() -> None:
    """The expectation itself, on a case worked by hand: 1/3 cent per hour across midnight."""
    line = _to_line(
        {
            "type": "compute",
            "id": "c",
            "accountId": ACME,
            "agentId": None,
            "plainVmId": None,
            "state": "running",
            "start": "2026-11-01T23:00:00Z",
            "end": "2026-11-02T02:00:00Z",
            "centsPerHour": Decimal("0.333333"),
        }
    )
    pieces = [
        (r[1], r[5], r[6]) for r in Expected.of([*map(_to_line, _entities()[:1]), line]).compute
    ]
    # 999,999 micro-cents in all: 333,333 before midnight, 666,666 after.
    assert pieces == [
        (date(2026, 11, 1), 333_333, 3_600_000_000),
        (date(2026, 11, 2), 666_666, 7_200_000_000),
    ]
